"""The builtin modules' contracts as Markdown (the README's "Step modules" block), generated from the models.

``python -m taskrunner.modules.docs`` or ``taskrunner schema --markdown`` prints it.
"""

from __future__ import annotations

from typing import Any

from taskrunner.modules.contracts import Contract
from taskrunner.modules.registry import BUILTINS

BEGIN, END = "<!-- modules:begin -->", "<!-- modules:end -->"


def modules_markdown() -> str:
    """Two tables: each module with its summary and outputs, then every parameter."""
    lines = [
        BEGIN,
        "| Module | What it does | Outputs (`steps.<id>.outputs.<name>`) |",
        "| --- | --- | --- |",
    ]
    for name, module in BUILTINS.items():
        assert module.contract is not None
        lines.append(f"| `{name}` | {_cell(module.contract.summary)} | {_outputs(module.contract)} |")
    lines += [
        "",
        "| Module | Parameter (`run.with`) | Type | Required | Description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, module in BUILTINS.items():
        assert module.contract is not None
        schema = module.contract.params.model_json_schema(by_alias=True, mode="validation")
        required = set(schema.get("required", []))
        rows = [
            f"| `{name}` | `{key}` | {_type(field)} | {'yes' if key in required else 'no'} | "
            f"{_cell(field.get('description', ''))} |"
            for key, field in schema.get("properties", {}).items()
        ]
        lines += rows or [
            f"| `{name}` | any | any JSON | no | every key becomes an output of the same name |"
        ]
    return "\n".join([*lines, END]) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _outputs(contract: Contract) -> str:
    if contract.outputs is None:
        return "its `with` keys"
    schema = contract.outputs.model_json_schema(by_alias=True, mode="serialization")
    required = set(schema.get("required", []))
    return ", ".join(
        f"`{key}` ({_type(field)}{'' if key in required else ', optional'})"
        for key, field in schema.get("properties", {}).items()
    )


def _type(schema: dict[str, Any]) -> str:
    """A JSON Schema in words: ``list of string``, ``object of string``, ``number``, ``any JSON``."""
    if "anyOf" in schema:
        kinds = [_type(s) for s in schema["anyOf"] if s.get("type") != "null"]
        if set(kinds) == {"string", "integer", "number", "boolean"}:
            return "string (a number or boolean is converted)"
        return " or ".join(kinds) if kinds else "null"
    kind = schema.get("type")
    if kind == "array":
        return f"list of {_type(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"object of {_type(schema['additionalProperties'])}"
    return str(kind) if kind else "any JSON"


if __name__ == "__main__":
    print(modules_markdown(), end="")
