"""Plans: the resolved, expanded and hashed form of a pack, its simulation and its inputs.lock."""

from taskrunner.plan.hashing import canonical_plan_bytes, parse_plan, plan_hash, plan_hash_of_bytes, rng_seed
from taskrunner.plan.inputs_lock import build_inputs_lock
from taskrunner.plan.planner import PlanResult, build_plan, plan_pack
from taskrunner.plan.simulate import Simulation, simulate

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
    "simulate",
]
