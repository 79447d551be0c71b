"""Cold import of each Lambda handler vs the floor ``import boto3, pymongo, pydantic``.

Each handler module (``functions/<name>/app.py``) is loaded by path from its own directory, as the Lambda
Python runtime loads ``app.handler``, in a fresh interpreter; the time is measured inside that interpreter
around the import alone (interpreter start-up is the same for every row). One untimed round warms the
bytecode and page caches, then the median of ``--repeat`` rounds is printed, with the ratio to the floor.

Target: every API handler (submit_run, get_run, approve_gate, cancel_run, approval_issuer) within 1.3x the floor. For a
handler over the target, ``python -X importtime`` attributes the difference: the modules the handler
imports and the floor does not, by their own import time, grouped by top-level package, with the first
project module that pulled each package in (what could be deferred).

``--tracing`` adds what Lambda sets with ``Tracing: Active`` (``AWS_XRAY_DAEMON_ADDRESS``...): the import
must cost the same, the X-Ray SDK is loaded on the first call only.

``--first-call`` measures a cold start the way a request meets it: each API handler is imported in a fresh
interpreter with the template's environment and Lambda's (``Tracing: Active`` included), then invoked once
with its ``events/`` sample, against a moto server on 127.0.0.1 provisioned from ``template.yaml`` and the
MongoDB wire server (``.venv-mongo``, ``make .venv-mongo/.installed``), as the SAM tests do. It prints the
import, the first call (the clients, settings, secrets and imports the first request triggers) and their total
against the floor; the target is the same 1.3x, on the total.

``--first-call-imports`` measures the import share of that cold start: each API handler's first invocation
(as ``--first-call`` runs it) records the modules the call added to ``sys.modules``; another fresh interpreter
then times importing the handler and exactly those modules by name, in the recorded order, without calling
anything. Same 1.3x target. For a handler over it, ``-X importtime`` lists the modules beyond the floor by own
time, whether the handler import or the first call loaded each, and the project code that pulled it in.

Run: .venv/bin/python bench/cold_import.py [--repeat N] [--explain all|missed|none] [--no-pyc-cache]
     [--explain-rounds N] [--top N] [--tracing] [--first-call] [--first-call-imports]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FUNCTIONS = REPO / "functions"
API_HANDLERS = ("submit_run", "get_run", "approve_gate", "cancel_run", "approval_issuer")
TARGET = 1.3
FLOOR = "import boto3, pymongo, pydantic"
PROJECT = ("taskrunner", "app")

LOAD_HANDLER = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("app", "app.py")
module = importlib.util.module_from_spec(spec)
sys.modules["app"] = module
spec.loader.exec_module(module)
assert callable(module.handler)
"""

MARK = "-- measured code starts --"
# Attribution runs with the collector off: a full collection triggered inside some import would otherwise
# be charged to that module's own time (30+ ms on whichever module happens to cross the threshold).
GC_OFF = "import gc\ngc.disable()\n"
PROBE = """
import json, sys, time
sys.stderr.write(MARK + "\\n")
sys.stderr.flush()
_start = time.perf_counter()
exec(compile(sys.argv[1], "<measured>", "exec"))
_seconds = time.perf_counter() - _start
print(json.dumps({"seconds": _seconds, "modules": len(sys.modules), "handler": globals().get("_handler_seconds")}))
""".replace("MARK", repr(MARK))

# What the Lambda runtime and the template give every function; nothing is contacted at import time.
LAMBDA_ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_LAMBDA_FUNCTION_NAME": "bench",
    "POWERTOOLS_SERVICE_NAME": "taskrunner",
    "POWERTOOLS_METRICS_NAMESPACE": "TaskRunner",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "TASKRUNNER_STORAGE__MODE": "mongo",
    "TASKRUNNER_AWS__ARTIFACTS_BUCKET": "bench-artifacts",
    "TASKRUNNER_SIGNING__KEY": "awskms:///alias/bench",
}

TRACING_ENV = {
    "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
    "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
    "_X_AMZN_TRACE_ID": "Root=1-6740f2a0-1a2b3c4d5e6f7a8b9c0d1e2f;Parent=53995c3f42cd8ad8;Sampled=1",
}


# The sample each API handler's first invocation answers (events/<name>.json).
FIRST_EVENTS = {
    "submit_run": "submit_run-create-run",
    "get_run": "get_run",
    "approve_gate": "approve_gate",
    "cancel_run": "cancel_run",
    "approval_issuer": "approval_issuer-jwks",
}
FIRST_CALL_PROBE = """
import importlib.util, json, os, sys, time, types, uuid
_start = time.perf_counter()
spec = importlib.util.spec_from_file_location("app", "app.py")
module = importlib.util.module_from_spec(spec)
sys.modules["app"] = module
spec.loader.exec_module(module)
_imported = time.perf_counter()
with open(sys.argv[1], encoding="utf-8") as f:
    event = json.load(f)
name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
context = types.SimpleNamespace(
    function_name=name,
    function_version="$LATEST",
    memory_limit_in_mb=int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]),
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:" + name,
    aws_request_id=str(uuid.uuid4()),
    log_group_name=os.environ["AWS_LAMBDA_LOG_GROUP_NAME"],
    log_stream_name=os.environ["AWS_LAMBDA_LOG_STREAM_NAME"],
    get_remaining_time_in_millis=lambda: 29000,
)
_imported_modules = len(sys.modules)
_before = set(sys.modules)
_loaded = time.perf_counter()
answer = module.handler(event, context)
_called = time.perf_counter()
_added = [m for m in list(sys.modules) if m not in _before]
module.handler(event, context)
_again = time.perf_counter()
print(json.dumps({"import": _imported - _start, "call": _called - _loaded, "warm": _again - _called,
                  "status": answer.get("statusCode"), "modules": [_imported_modules, len(sys.modules)],
                  "added": _added}))
"""
# The handler, then the modules its first call added, by name in the recorded order (argv[1]: a JSON list).
IMPORTS_PROBE = LOAD_HANDLER.replace(
    "assert callable(module.handler)",
    """assert callable(module.handler)
import importlib, json
_handler_seconds = time.perf_counter() - _start
for _name in json.load(open(sys.argv[2], encoding="utf-8")):
    if _name not in sys.modules:
        importlib.import_module(_name)
""",
)

# Before the first-call probe: for every module imported from then on, the innermost project code running
# when it was first looked for (``taskrunner.aws.clients.client``), written to argv[2] as JSON at exit.
PULLED_BY_PRELUDE = """
import atexit, json, sys
_PULLED = {}
class _PulledBy:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name not in _PULLED:
            frame = sys._getframe(1)
            while frame is not None:
                owner = frame.f_globals.get("__name__", "")
                if owner.split(".")[0] in ("taskrunner", "app"):
                    code = frame.f_code.co_qualname
                    _PULLED[name] = owner if code == "<module>" else owner + "." + code
                    break
                frame = frame.f_back
        return None
sys.meta_path.insert(0, _PulledBy)
atexit.register(lambda: json.dump(_PULLED, open(sys.argv[2], "w", encoding="utf-8")))
"""


@dataclass(frozen=True)
class FirstCall:
    imported: float
    called: float
    warm: float  # the same request again in the same interpreter
    status: int | None
    modules: tuple[int, int]  # loaded after the import, after the first call
    added: tuple[str, ...]  # the modules the first call added to sys.modules, in that order

    @property
    def cold(self) -> float:
        """What a cold start adds: the import and the first call's one-time work (clients, settings,
        secrets, imports), i.e. the first call less the same call warm."""
        return self.imported + max(0.0, self.called - self.warm)


@dataclass(frozen=True)
class Sample:
    seconds: float
    modules: int
    handler: float | None = None  # of ``seconds``, the handler module's import (--first-call-imports)


def environment(pyc_prefix: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKRUNNER_", "AWS_", "POWERTOOLS_"))}
    env.update(LAMBDA_ENV)
    if pyc_prefix is not None:
        env["PYTHONPYCACHEPREFIX"] = pyc_prefix
    return env


def run_probe(
    code: str, cwd: Path, pyc_prefix: str | None, env: dict[str, str] | None = None, *args: str
) -> Sample:
    """Time ``code`` in a fresh interpreter (``args`` follow it in ``sys.argv``); ``env`` replaces Lambda's."""
    pyc = tempfile.mkdtemp(prefix="pyc-") if pyc_prefix == "fresh" else pyc_prefix
    if env is not None and pyc is not None:
        env = {**env, "PYTHONPYCACHEPREFIX": pyc}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, code, *args],
        cwd=cwd,
        env=env if env is not None else environment(pyc),
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"import failed in {cwd}:\n{out.stderr}")
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return Sample(data["seconds"], data["modules"], data["handler"])


Row = tuple[int, int, int, str]  # depth, own us, cumulative us, module


def import_tree(
    code: str, cwd: Path, env: dict[str, str] | None = None, *args: str
) -> tuple[list[Row], float]:
    """``python -X importtime`` rows of the imports ``code`` makes (in print order: children before their
    parent), and the seconds ``code`` took (imports plus the module-level work of the handler file)."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", PROBE, code, *args],
        cwd=cwd,
        env=env if env is not None else environment(None),
        capture_output=True,
        text=True,
        check=True,
    )
    rows: list[Row] = []
    lines = out.stderr.splitlines()
    for line in lines[lines.index(MARK) + 1 :]:
        if not line.startswith("import time:"):
            continue
        own_us, cumulative_us, name = line.removeprefix("import time:").split("|", 2)
        depth = (len(name) - 1 - len(name.lstrip(" "))) // 2
        rows.append((depth, int(own_us), int(cumulative_us), name.strip()))
    seconds = float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])
    return rows, seconds


def median_tree(
    code: str, cwd: Path, rounds: int, env: dict[str, str] | None = None, *args: str
) -> tuple[list[Row], float]:
    """The import tree with each module's own and cumulative time the median over ``rounds`` runs."""
    runs = [import_tree(code, cwd, env, *args) for _ in range(rounds)]
    own: dict[str, list[int]] = defaultdict(list)
    cumulative: dict[str, list[int]] = defaultdict(list)
    for rows, _ in runs:
        for _depth, own_us, cumulative_us, module in rows:
            own[module].append(own_us)
            cumulative[module].append(cumulative_us)
    shape = runs[0][0]
    rows = [
        (d, int(statistics.median(own[m])), int(statistics.median(cumulative[m])), m)
        for d, _o, _c, m in shape
    ]
    return rows, statistics.median(seconds for _, seconds in runs)


def importers(rows: list[Row]) -> dict[str, str]:
    """module -> the module that imported it."""
    parent: dict[str, str] = {}
    pending: dict[int, list[str]] = defaultdict(list)
    for depth, _own, _cum, name in rows:
        for child in pending.pop(depth + 1, []):
            parent[child] = name
        pending[depth].append(name)
    return parent


def package_of(module: str) -> str:
    """Third-party modules group by top-level package, project modules by their subpackage."""
    top_level = module.split(".")[0]
    if top_level in PROJECT and "." in module:
        return module.rsplit(".", 1)[0]
    return top_level


def pulled_in_by(module: str, parent: dict[str, str], keep: int = 4) -> str:
    """The project modules on the import path from the handler file down to ``module`` (the last ``keep``),
    then ``module``'s own importer when that is not a project module."""
    path = [module]
    while path[-1] in parent:
        path.append(parent[path[-1]])
    project = [m for m in reversed(path[1:]) if m.split(".")[0] in PROJECT][-keep:]
    direct = parent.get(module)
    via = [direct] if direct and direct.split(".")[0] not in PROJECT else []
    if via and project and parent.get(direct) != project[-1]:
        via = ["...", *via]
    return " > ".join([*(project or ["(the handler file)"]), *via, module])


def explain(name: str, floor_modules: set[str], top: int, rounds: int, gc_ms: float) -> None:
    rows, _seconds = median_tree(GC_OFF + LOAD_HANDLER, FUNCTIONS / name, rounds)
    parent = importers(rows)
    extra = [r for r in rows if r[3] not in floor_modules]
    print(
        f"\n-- {name}: {len(extra)} modules beyond the floor, {sum(r[1] for r in extra) / 1000:.0f} ms of "
        f"their own import time; garbage collection during the import: {gc_ms:.0f} ms (not in the times below)"
    )
    by_package: dict[str, int] = defaultdict(int)
    count: dict[str, int] = defaultdict(int)
    for _depth, own_us, _cum, module in extra:
        by_package[package_of(module)] += own_us
        count[package_of(module)] += 1
    print(f"   {'package (own time of its modules beyond the floor)':<44}{'ms':>7}{'mods':>6}  imported via")
    for key, own_us in sorted(by_package.items(), key=lambda kv: -kv[1])[:top]:
        entry = next(r[3] for r in rows if package_of(r[3]) == key)  # first completed: a leaf
        while entry in parent and package_of(parent[entry]) == key:  # up to the package's entry point
            entry = parent[entry]
        print(f"   {key:<44}{own_us / 1000:>7.1f}{count[key]:>6}  {pulled_in_by(entry, parent)}")
    shared = [r for r in rows if r[3] in floor_modules and "." not in r[3] and r[2] >= 5000]
    if shared:
        print(f"   {'floor packages it imports too (cumulative)':<44}{'ms':>7}{'':>6}  imported via")
        for _depth, _own, cumulative_us, module in sorted(shared, key=lambda r: -r[2])[:top]:
            print(f"   {module:<44}{cumulative_us / 1000:>7.1f}{'':>6}  {pulled_in_by(module, parent)}")
    print(f"   {'heaviest single modules (own time)':<44}{'ms':>7}")
    own_by_module: dict[str, int] = defaultdict(int)
    for _depth, own_us, _cum, module in extra:
        own_by_module[module] += own_us
    for module, own_us in sorted(own_by_module.items(), key=lambda kv: -kv[1])[:top]:
        print(f"   {module:<44}{own_us / 1000:>7.1f}")


def first_call_probe(name: str, env: dict[str, str], prelude: str = "", *args: str) -> FirstCall:
    event = REPO / "events" / f"{FIRST_EVENTS[name]}.json"
    out = subprocess.run(
        [sys.executable, "-c", prelude + FIRST_CALL_PROBE, str(event), *args],
        cwd=FUNCTIONS / name,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"{name}: first invocation failed:\n{out.stderr[-4000:]}")
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return FirstCall(
        data["import"],
        data["call"],
        data["warm"],
        data["status"],
        tuple(data["modules"]),
        tuple(data["added"]),
    )


@contextmanager
def api_stack() -> Iterator[dict[str, dict[str, str]]]:
    """A moto server provisioned from ``template.yaml`` and the MongoDB wire server on 127.0.0.1; yields
    each API handler's environment (the template's and Lambda's, ``Tracing: Active`` included)."""
    sys.path[:0] = [str(REPO / "tests" / "sam"), str(REPO / "tests")]
    from sam_stack import lambda_runtime_environment, moto_server, provision
    from support.mongo_wire import mongo_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the moto server's request log

    base = {k: v for k, v in os.environ.items() if not k.startswith(("TASKRUNNER_", "AWS_", "POWERTOOLS_"))}
    with moto_server("127.0.0.1") as endpoint, mongo_server("127.0.0.1") as mongo_uri:
        stack = provision(endpoint, mongo_uri, template_path=REPO / "template.yaml")
        envs: dict[str, dict[str, str]] = {}
        for name in API_HANDLERS:
            function = stack.template.function(name)
            envs[name] = {
                **base,
                **lambda_runtime_environment(function.logical_id, function, FUNCTIONS / name),
                **stack.environment(function.logical_id),
            }
        yield envs


def first_call(repeat: int) -> None:
    """Import + first invocation of each API handler against a provisioned moto server and MongoDB."""
    with api_stack() as envs:
        floors: list[float] = []
        calls: dict[str, list[FirstCall]] = defaultdict(list)
        run_probe(FLOOR, REPO, None)
        for name in API_HANDLERS:  # warm bytecode and page caches
            first_call_probe(name, envs[name])
        for _ in range(repeat):  # interleaved
            floors.append(run_probe(FLOOR, REPO, None).seconds)
            for name in API_HANDLERS:
                calls[name].append(first_call_probe(name, envs[name]))

    floor = statistics.median(floors)
    print(f"python {sys.version.split()[0]}, median of {repeat} fresh interpreters per row; moto server and")
    print(f"MongoDB wire server on 127.0.0.1; floor = `{FLOOR}` = {floor * 1000:.1f} ms")
    print(
        "cold = import + (1st call - warm call): the one-time work, without the round trips every call makes"
    )
    print(
        f"{'handler':<14}{'import':>8}{'1st call':>10}{'warm':>8}{'cold ms':>9}{'modules':>13}{'x floor':>9}"
        f"{'status':>8}  target (cold)"
    )
    missed = []
    for name in API_HANDLERS:
        runs = calls[name]
        cold = statistics.median(c.cold for c in runs)
        ok = cold / floor <= TARGET
        if not ok:
            missed.append(name)
        imported, called, warm = (
            statistics.median(getattr(c, field) * 1000 for c in runs)
            for field in ("imported", "called", "warm")
        )
        modules = f"{runs[-1].modules[0]} > {runs[-1].modules[1]}"
        print(
            f"{name:<14}{imported:>8.1f}{called:>10.1f}{warm:>8.1f}{cold * 1000:>9.1f}{modules:>13}"
            f"{cold / floor:>9.2f}{runs[-1].status!s:>8}  <= {TARGET}x {'ok' if ok else 'MISSED'}"
        )
    print(
        f"API handlers over {TARGET}x the floor (import + first-call set-up): {', '.join(missed) or 'none'}"
    )


def first_call_imports(repeat: int, top: int, rounds: int, explained: bool) -> None:
    """The import share of each API handler's cold start: the handler plus every module its first call
    imports, timed in a fresh interpreter without the call."""
    with tempfile.TemporaryDirectory(prefix="first-call-imports-") as scratch, api_stack() as envs:
        lists: dict[str, Path] = {}
        pulled: dict[str, dict[str, str]] = {}
        added: dict[str, tuple[str, ...]] = {}
        for name in API_HANDLERS:
            record = Path(scratch) / f"{name}.pulled.json"
            added[name] = first_call_probe(name, envs[name], PULLED_BY_PRELUDE, str(record)).added
            pulled[name] = json.loads(record.read_text(encoding="utf-8"))
            lists[name] = Path(scratch) / f"{name}.json"
            lists[name].write_text(json.dumps(added[name]), encoding="utf-8")
        floors: list[float] = []
        times: dict[str, list[Sample]] = defaultdict(list)
        runs = [(n, IMPORTS_PROBE, FUNCTIONS / n, envs[n], str(lists[n])) for n in API_HANDLERS]
        for _name, code, cwd, env, names in runs:  # warm bytecode and page caches
            run_probe(code, cwd, None, env, names)
        for _ in range(repeat):  # interleaved
            floors.append(run_probe(FLOOR, REPO, None).seconds)
            for name, code, cwd, env, names in runs:
                times[name].append(run_probe(code, cwd, None, env, names))

        floor = statistics.median(floors)
        print(f"python {sys.version.split()[0]}, median of {repeat} fresh interpreters per row")
        print(f"floor = `{FLOOR}` = {floor * 1000:.1f} ms")
        print("imports = the handler, then by name every module its first call (moto, MongoDB) imported")
        print(
            f"{'handler':<14}{'handler ms':>11}{'+ 1st call ms':>14}{'= imports ms':>13}{'1st-call mods':>15}"
            f"{'x floor':>9}  target"
        )
        missed = []
        for name in API_HANDLERS:
            median = statistics.median(t.seconds for t in times[name])
            handler = statistics.median(t.handler or 0.0 for t in times[name])
            ok = median / floor <= TARGET
            if not ok:
                missed.append(name)
            print(
                f"{name:<14}{handler * 1000:>11.1f}{(median - handler) * 1000:>14.1f}{median * 1000:>13.1f}"
                f"{len(added[name]):>15}{median / floor:>9.2f}  <= {TARGET}x {'ok' if ok else 'MISSED'}"
            )
        print(
            f"API handlers over {TARGET}x the floor (import + first-call imports): {', '.join(missed) or 'none'}"
        )
        if not missed or not explained:
            return
        floor_modules = {r[3] for r in median_tree(GC_OFF + FLOOR, REPO, rounds)[0]}
        print(
            f"\nWhere the time goes: python -X importtime with the garbage collector off, median of {rounds} "
            "runs; modules beyond the floor by own time, with the project code that first looked each up"
        )
        for name in missed:
            rows, _ = median_tree(
                GC_OFF + IMPORTS_PROBE, FUNCTIONS / name, rounds, envs[name], str(lists[name])
            )
            extra = [r for r in rows if r[3] not in floor_modules]
            print(
                f"\n-- {name}: {len(extra)} modules beyond the floor, "
                f"{sum(r[1] for r in extra) / 1000:.0f} ms of their own import time"
            )
            first = set(added[name])
            on_call = sum(r[1] for r in extra if r[3] in first) / 1000
            print(f"   of which the first call's: {on_call:.0f} ms; the rest the handler module's import")
            print(f"   {'module':<44}{'ms':>7}  {'when':<9}pulled in by")
            for _depth, own_us, _cum, module in sorted(extra, key=lambda r: -r[1])[:top]:
                when = "1st call" if module in first else "import"
                by = pulled[name].get(module, "(the handler file)")
                print(f"   {module:<44}{own_us / 1000:>7.1f}  {when:<9}{by}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=7, help="timed rounds per handler (median)")
    parser.add_argument("--explain", choices=("all", "missed", "none"), default="missed")
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--explain-rounds", type=int, default=3, help="-X importtime runs per module")
    parser.add_argument(
        "--no-pyc-cache",
        action="store_true",
        help="compile every module from source each round (a layer shipped without __pycache__)",
    )
    parser.add_argument("--tracing", action="store_true", help="with the variables of Tracing: Active")
    parser.add_argument(
        "--first-call",
        action="store_true",
        help="import + first invocation of each API handler against a moto server and MongoDB on 127.0.0.1",
    )
    parser.add_argument(
        "--first-call-imports",
        action="store_true",
        help="import of each API handler plus the modules its first invocation imports (timed without the call)",
    )
    args = parser.parse_args()
    if args.first_call_imports:
        first_call_imports(args.repeat, args.top, args.explain_rounds, args.explain != "none")
        return
    if args.first_call:
        first_call(args.repeat)
        return
    if args.tracing:
        LAMBDA_ENV.update(TRACING_ENV)
    pyc = "fresh" if args.no_pyc_cache else None
    names = sorted(p.parent.name for p in FUNCTIONS.glob("*/app.py"))
    cases = [("floor", FLOOR, REPO), *((n, LOAD_HANDLER, FUNCTIONS / n) for n in names)]

    samples: dict[str, list[Sample]] = defaultdict(list)
    for _name, code, cwd in cases:  # warm bytecode and page caches
        run_probe(code, cwd, pyc)
    for _ in range(args.repeat):  # interleaved, so drift hits every row alike
        for name, code, cwd in cases:
            samples[name].append(run_probe(code, cwd, pyc))

    floor = statistics.median(s.seconds for s in samples["floor"])
    print(f"python {sys.version.split()[0]}, median of {args.repeat} fresh interpreters per row")
    print(
        f"floor = `{FLOOR}`"
        + ("; no bytecode cache" if args.no_pyc_cache else "")
        + ("; with AWS_XRAY_DAEMON_ADDRESS (Tracing: Active)" if args.tracing else "")
    )
    print(f"{'module':<16}{'median ms':>11}{'min ms':>9}{'modules':>9}{'x floor':>9}  target")
    missed = []
    medians: dict[str, float] = {}
    for name, _code, _cwd in cases:
        times = [s.seconds for s in samples[name]]
        median = medians[name] = statistics.median(times)
        ratio = median / floor
        target = ""
        if name in API_HANDLERS:
            ok = ratio <= TARGET
            target = f"<= {TARGET}x {'ok' if ok else 'MISSED'}"
            if not ok:
                missed.append(name)
        print(
            f"{name:<16}{median * 1000:>11.1f}{min(times) * 1000:>9.1f}{samples[name][0].modules:>9}"
            f"{ratio:>9.2f}  {target}"
        )
    print(f"API handlers over {TARGET}x the floor: {', '.join(missed) or 'none'}")

    explained = names if args.explain == "all" else missed if args.explain == "missed" else []
    if explained:
        floor_rows, _ = median_tree(GC_OFF + FLOOR, REPO, args.explain_rounds)
        print(
            f"\nWhere the time goes: python -X importtime with the garbage collector off, median of "
            f"{args.explain_rounds} runs per module (own times, inflated by the tracing itself)"
        )
        for name in explained:
            cwd = FUNCTIONS / name
            without_gc = [
                run_probe(GC_OFF + LOAD_HANDLER, cwd, pyc).seconds for _ in range(args.explain_rounds)
            ]
            gc_ms = (medians[name] - statistics.median(without_gc)) * 1000
            explain(name, {r[3] for r in floor_rows}, args.top, args.explain_rounds, gc_ms)


if __name__ == "__main__":
    main()
