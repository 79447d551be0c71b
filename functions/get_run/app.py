"""get_run: the read-only HTTP routes — runs, one run, logs, artifacts, evidence and the OpenAPI document."""

from taskrunner.api.http import lambda_handler, new_app
from taskrunner.api.routes import openapi, reads

app = new_app(reads.router, openapi.router)
handler = lambda_handler(app)
