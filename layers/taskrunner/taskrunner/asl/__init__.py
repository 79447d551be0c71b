"""Plan -> Amazon States Language: the compiler, its structural validator and the limits analysis."""

from taskrunner.asl.compiler import PLACEHOLDERS, CompiledStateMachine, compile_plan, substitute_placeholders
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
