"""approver_keys: POST/GET /api/approvers/keys, POST .../confirm, DELETE /api/approvers/keys/{keyId}."""

from taskrunner.api.http import lambda_handler, new_app
from taskrunner.api.routes import approver_keys

app = new_app(approver_keys.router)
handler = lambda_handler(app)
