"""The OpenAPI 3.1 document of the whole API, generated from every route's models."""

from __future__ import annotations

from functools import cache


@cache
def openapi_json() -> str:
    from taskrunner.api.http import OPENAPI_TITLE, new_app
    from taskrunner.api.routes import approvals, lifecycle, reads, submit

    app = new_app(submit.router, reads.router, approvals.router, lifecycle.router)
    return app.get_openapi_json_schema(
        title=OPENAPI_TITLE,
        version=__import__("taskrunner").__version__,
        openapi_version="3.1.0",
        description="Run Task Packs deterministically, with approval gates, policy gates and signed evidence.",
    )
