"""submit_run: POST /api/plans, POST /api/runs, and the EventBridge schedule that submits a configured pack."""

from typing import Any

from taskrunner.api.http import lambda_handler, new_app
from taskrunner.api.routes import submit
from taskrunner.composition import services
from taskrunner.engine.schedule import submit_scheduled

app = new_app(submit.router)
_http = lambda_handler(app)


def handler(event: dict[str, Any], context: Any) -> Any:
    if event.get("detail-type") == "Scheduled Event":
        return submit_scheduled(services(), event)
    return _http(event, context)
