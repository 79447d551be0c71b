"""approve_gate: POST /api/runs/{runId}/approve — a signed decision on an approval gate."""

from taskrunner.api.http import lambda_handler, new_app
from taskrunner.api.routes import approvals

app = new_app(approvals.router)
handler = lambda_handler(app)
