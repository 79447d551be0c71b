"""approval_issuer: GET /.well-known/jwks.json and /.well-known/openid-configuration — the approval-token
issuer's public keys and discovery document."""

from taskrunner.api.http import lambda_handler, new_app
from taskrunner.api.routes import issuer

app = new_app(issuer.router, issuer.discovery)
handler = lambda_handler(app)
