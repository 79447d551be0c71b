"""console: the web console's static files (``static/``) and ``config.json``, without authentication."""

from pathlib import Path
from typing import Any

from taskrunner.api.console import answer, load_static
from taskrunner.config import console_settings

FILES = load_static(Path(__file__).parent / "static")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return answer(event, FILES, console_settings())
