"""cancel_run: POST /api/runs/{runId}/cancel and /resume."""

from taskrunner.api.http import lambda_handler, new_app
from taskrunner.api.routes import lifecycle

app = new_app(lifecycle.router)
handler = lambda_handler(app)
