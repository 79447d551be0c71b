"""JSON Schemas of the pack manifest and the plan document, exported from their pydantic models.

The pack schema checks each ``run.with`` against the contract of the module its ``uses`` names (builtins and
the plugins installed when it is exported), so editors flag a wrong parameter as it is typed.
Regenerate the committed files with ``python -m taskrunner.plan.schemas [DIRECTORY]`` (default ``schemas``);
``taskrunner schema`` prints the pack schema.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from taskrunner.modules.registry import find_module, module_names
from taskrunner.pack.models import PackManifest
from taskrunner.plan.document import Plan

_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_BASE_ID = "https://stellaops.io/schemas/"


_TEMPLATE = {
    "type": "string",
    "pattern": "\\{\\{",
    "description": "A {{ expression }} template: checked once resolved (at plan time for inputs, else at run time).",
}


def pack_schema() -> dict[str, Any]:
    """Schema of a ``stellaops.io/pack.v1`` manifest (structure and module parameters; pack-wide rules such as
    references are checked by the loader)."""
    schema = PackManifest.model_json_schema(by_alias=True, mode="validation")
    defs: dict[str, Any] = schema["$defs"]
    defs["Template"] = _TEMPLATE
    defs["RunSpec"]["allOf"] = [_with_schema(name, defs) for name in module_names() if _params_of(name)]
    return {"$schema": _DIALECT, "$id": _BASE_ID + "pack.v1.schema.json", **schema}


def _params_of(name: str) -> dict[str, Any] | None:
    module = find_module(name)
    if module is None or module.contract is None:
        return None
    return module.contract.params.model_json_schema(
        by_alias=True, mode="validation", ref_template="#/$defs/{model}"
    )


def _with_schema(name: str, defs: dict[str, Any]) -> dict[str, Any]:
    """``if uses == name then with satisfies the module's parameters`` (a template may stand for any value)."""
    params = _params_of(name) or {}
    defs.update(params.pop("$defs", {}))
    for key, field in params.get("properties", {}).items():
        params["properties"][key] = {"anyOf": [field, {"$ref": "#/$defs/Template"}]}
    defs[f"with.{name}"] = {**params, "title": f"{name} parameters"}
    return {
        "if": {"properties": {"uses": {"const": name}}, "required": ["uses"]},
        "then": {"properties": {"with": {"$ref": f"#/$defs/with.{name}"}}},
    }


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
