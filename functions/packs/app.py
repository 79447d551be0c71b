"""packs: GET /api/packs, GET /api/packs/{packId}/versions[/{version}], POST .../versions, POST .../promote."""

from taskrunner.api.http import lambda_handler, new_app
from taskrunner.api.routes import packs

app = new_app(packs.router)
handler = lambda_handler(app)
