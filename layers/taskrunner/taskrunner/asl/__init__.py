"""Plan -> Amazon States Language: the compiler, its structural validator and the limits analysis."""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskrunner.lazy import lazy_exports

if TYPE_CHECKING:
    from taskrunner.asl.compiler import (
        PLACEHOLDERS,
        CompiledStateMachine,
        compile_plan,
        substitute_placeholders,
    )
    from taskrunner.asl.limits import LimitsReport, MapLimits, analyse_limits
    from taskrunner.asl.validator import validate_definition

__all__ = [
    "PLACEHOLDERS",
    "CompiledStateMachine",
    "LimitsReport",
    "MapLimits",
    "analyse_limits",
    "compile_plan",
    "substitute_placeholders",
    "validate_definition",
]
__getattr__ = lazy_exports(
    __name__,
    {
        "CompiledStateMachine": "compiler",
        "LimitsReport": "limits",
        "MapLimits": "limits",
        "PLACEHOLDERS": "compiler",
        "analyse_limits": "limits",
        "compile_plan": "compiler",
        "substitute_placeholders": "compiler",
        "validate_definition": "validator",
    },
)
