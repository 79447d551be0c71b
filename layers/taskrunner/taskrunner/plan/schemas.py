"""JSON Schemas of the pack manifest and the plan document, exported from their pydantic models.

Regenerate the committed files with ``python -m taskrunner.plan.schemas [DIRECTORY]`` (default ``schemas``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from taskrunner.pack.models import PackManifest
from taskrunner.plan.document import Plan

_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_BASE_ID = "https://stellaops.io/schemas/"


def pack_schema() -> dict[str, Any]:
    """Schema of a ``stellaops.io/pack.v1`` manifest (structure; pack-wide rules are checked by the loader)."""
    schema = PackManifest.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": _DIALECT, "$id": _BASE_ID + "pack.v1.schema.json", **schema}


def plan_schema() -> dict[str, Any]:
    """Schema of a ``stellaops.io/plan.v1`` plan document (``plan.json``)."""
    schema = Plan.model_json_schema(by_alias=True, mode="serialization")
    return {"$schema": _DIALECT, "$id": _BASE_ID + "plan.v1.schema.json", **schema}


SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {
    "pack.v1.schema.json": pack_schema,
    "plan.v1.schema.json": plan_schema,
}


def schema_text(schema: dict[str, Any]) -> str:
    """The committed form of a schema: sorted keys, two-space indent, trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas(directory: Path) -> list[Path]:
    """Write every schema file into ``directory``; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, build in SCHEMAS.items():
        path = directory / name
        path.write_text(schema_text(build()), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_schemas(Path(sys.argv[1] if len(sys.argv) > 1 else "schemas")):
        print(path)
