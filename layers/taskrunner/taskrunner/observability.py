"""Powertools Logger and Metrics shared by every handler; the Tracer is created lazily.

Importing X-Ray support costs cold-start time, so the tracer is built on first use and only when
tracing is enabled (``POWERTOOLS_TRACE_DISABLED`` unset and ``AWS_XRAY_DAEMON_ADDRESS`` present, as
Lambda sets it with ``Tracing: Active``). Each handler call runs in a ``## <handler>`` subsegment, because
the segment Lambda opens for an invocation cannot carry annotations. Segments go to the daemon over UDP,
so an unreachable daemon only loses them.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "taskrunner"))
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "TaskRunner"))

__all__ = ["MetricUnit", "annotate", "count", "logger", "metrics", "per_pack", "traced", "tracer"]
PACK_DIMENSION = "pack"
# AWS calls and MongoDB commands become subsegments; patching everything X-Ray knows would cost cold start.
TRACED_LIBRARIES = ("botocore", "pymongo")
# Workers that record no metric on a call (e.g. verify_plan) are expected; do not warn about it.
warnings.filterwarnings("ignore", message="No application metrics to publish")


def count(name: str, value: float = 1, unit: MetricUnit = MetricUnit.Count) -> None:
    """Record one EMF metric in the ``TaskRunner`` namespace (flushed when the handler returns).

    While metrics are disabled (the local runtime) only the latest value is kept: Powertools' flush does not
    clear a disabled Metrics, so its values would pile up and be printed anyway once a metric holds 100.
    """
    if is_metrics_disabled():
        metrics.clear_metrics()
    metrics.add_metric(name=name, unit=unit, value=value)


def per_pack(name: str, value: float, unit: MetricUnit, pack: str) -> None:
    """Record ``name`` stack-wide and, in an EMF document of its own (so the invocation's other metrics keep
    their dimensions), with the dimension ``pack`` (plus ``service``): the series the SLO alarms watch."""
    count(name, value, unit)
    if is_metrics_disabled():
        return
    with single_metric(
        name=name,
        unit=unit,
        value=value,
        namespace=metrics.namespace,
        default_dimensions={PACK_DIMENSION: pack},
    ):
        pass


@cache
def tracer() -> Tracer | None:
    """The Powertools Tracer, or None when tracing is off (locally, in tests)."""
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() == "true" or not os.environ.get(
        "AWS_XRAY_DAEMON_ADDRESS"
    ):
        return None
    from aws_lambda_powertools import Tracer

    return Tracer(patch_modules=TRACED_LIBRARIES)


@contextmanager
def traced(name: str) -> Iterator[None]:
    """Run a handler call in the subsegment ``## name`` (a no-op while tracing is off)."""
    active = tracer()
    if active is None:
        yield
        return
    with active.provider.in_subsegment(name=f"## {name}"):
        yield


def annotate(**keys: str) -> None:
    """Correlate logs (and traces, when on) with run and step ids."""
    logger.append_keys(**keys)
    active = tracer()
    if active is not None:
        for key, value in keys.items():
            active.put_annotation(key=key, value=value)
