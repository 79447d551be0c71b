"""Plans: the resolved, expanded and hashed form of a pack, its simulation and its inputs.lock."""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskrunner.lazy import lazy_exports

if TYPE_CHECKING:
    from taskrunner.plan.hashing import (
        canonical_plan_bytes,
        parse_plan,
        plan_hash,
        plan_hash_of_bytes,
        rng_seed,
    )
    from taskrunner.plan.inputs_lock import build_inputs_lock
    from taskrunner.plan.planner import PlanResult, build_plan, plan_pack
    from taskrunner.plan.simulate import Simulation

__all__ = [
    "PlanResult",
    "Simulation",
    "build_inputs_lock",
    "build_plan",
    "canonical_plan_bytes",
    "parse_plan",
    "plan_hash",
    "plan_hash_of_bytes",
    "plan_pack",
    "rng_seed",
]
__getattr__ = lazy_exports(
    __name__,
    {
        "PlanResult": "planner",
        "Simulation": "simulate",
        "build_inputs_lock": "inputs_lock",
        "build_plan": "planner",
        "canonical_plan_bytes": "hashing",
        "parse_plan": "hashing",
        "plan_hash": "hashing",
        "plan_hash_of_bytes": "hashing",
        "plan_pack": "planner",
        "rng_seed": "hashing",
    },
)
