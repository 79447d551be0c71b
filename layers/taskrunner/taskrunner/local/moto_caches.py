"""Caches at moto's Step Functions seam: one parse per definition and per JSONPath, one boto3 client per
(region, service).

moto (pinned, :data:`taskrunner.local.lambda_runner.MOTO_VERSION`) parses a state machine's definition again
for every execution (``AmazonStateLanguageParser.parse``), parses every JSONPath each time it applies one
(jsonpath_ng builds its parser tables per call; :data:`JSONPATH_MODULES`) and builds a new boto3 client for
every Task state (``boto_client_for``, imported by name into each module listed in :data:`CLIENT_MODULES`).
The parsed program holds no per-execution state (executions keep theirs in their own environment), a parsed
JSONPath is an immutable tree, and boto3 clients are thread-safe once created, so all three are cached for
as long as :func:`moto_caches_installed` is active.
A module whose ``boto_client_for`` was already replaced (the IAM seam in :mod:`taskrunner.local.authorization`
makes its own clients, one per role) is left as it is.
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from taskrunner.errors import ConfigurationError
from taskrunner.local.parsed_definitions import ParsedDefinitions

PARSER_MODULE = "moto.stepfunctions.parser.asl.parse.asl_parser"
CLIENT_MODULE = "moto.stepfunctions.parser.asl.utils.boto_client"
_STATE = "moto.stepfunctions.parser.asl.component.state.exec"
CLIENT_MODULES = (
    f"{_STATE}.state_map.result_writer.resource_eval.resource_eval_s3",
    f"{_STATE}.state_map.item_reader.eval.resource_eval_s3",
    f"{_STATE}.state_task.lambda_eval_utils",
    *(
        f"{_STATE}.state_task.service.state_task_service_{name}"
        for name in (
            "unsupported",
            "glue",
            "events",
            "ecs",
            "sqs",
            "sfn",
            "dynamodb",
            "batch",
            "sns",
            "aws_sdk",
        )
    ),
)
# moto modules that parse a JSONPath (InputPath, OutputPath, ResultPath, "x.$" parameters) on every use,
# with the jsonpath_ng function each imports by name as ``parse``
JSONPATH_MODULES = {
    "moto.stepfunctions.parser.asl.utils.json_path": "jsonpath_ng.ext",
    "moto.stepfunctions.parser.asl.component.common.path.result_path": "jsonpath_ng",
}
PARSED_JSONPATHS = 4096  # distinct JSONPath strings kept parsed
PARSE_PARAMETERS = ["definition"]
PARSED_DEFINITIONS = 64  # distinct definitions kept parsed
CLIENT_PARAMETERS = ["region", "service", "state_credentials"]


class ParseCache:
    """``AmazonStateLanguageParser.parse`` memoised on the definition text, the ``size`` most recently used
    kept (a long-running process sees ever new plans); errors are not cached."""

    def __init__(
        self,
        parse: Callable[[str], tuple[Any, Any]],
        size: int = PARSED_DEFINITIONS,
        disk: ParsedDefinitions | None = None,
    ) -> None:
        self._parse = parse
        self._size = size
        self._disk = disk
        self._parsed: OrderedDict[str, tuple[Any, None]] = OrderedDict()
        self._lock = threading.Lock()
        self.parses = 0

    def __len__(self) -> int:
        return len(self._parsed)

    def __call__(self, definition: str) -> tuple[Any, None]:
        with self._lock:  # parsing is CPU-bound: serialising it costs nothing and parses each text once
            if definition in self._parsed:
                self._parsed.move_to_end(definition)
            else:
                self._parsed[definition] = self._load_or_parse(definition)
                if len(self._parsed) > self._size:
                    self._parsed.popitem(last=False)
            return self._parsed[definition]

    def _load_or_parse(self, definition: str) -> tuple[Any, None]:
        """The evaluable program, from disk or parsed; the ANTLR tree is dropped (moto's backend uses only the
        program, ``parse(...)[0]``, and the tree is several times its size)."""
        stored = self._disk.load(definition) if self._disk is not None else None
        if stored is not None:
            return stored, None
        program = self._parse(definition)[0]
        self.parses += 1
        if self._disk is not None:
            self._disk.save(definition, program)
        return program, None


class ClientCache:
    """``boto_client_for`` memoised on (region, service); moto's clients ignore ``state_credentials``."""

    def __init__(self, build: Callable[..., Any]) -> None:
        self._build = build
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def __call__(self, region: str, service: str, state_credentials: Any = None) -> Any:
        key = (region, service)
        client = self._clients.get(key)
        if client is not None:
            return client
        with self._lock:  # creating a client is not thread-safe; using one is
            if key not in self._clients:
                self._clients[key] = self._build(region=region, service=service, state_credentials=None)
            return self._clients[key]


def verify_moto_caches_seam() -> None:
    """Fail loudly unless the patched functions have the signatures and importers this module was built for."""
    import inspect

    from taskrunner.local.lambda_runner import MOTO_VERSION

    remediation = f"Re-verify tests/integration/test_moto_caches.py against this moto and update MOTO_VERSION ({MOTO_VERSION})."
    parser = importlib.import_module(PARSER_MODULE).AmazonStateLanguageParser
    build = importlib.import_module(CLIENT_MODULE).boto_client_for
    found = {
        "AmazonStateLanguageParser.parse": (
            list(inspect.signature(parser.parse).parameters),
            PARSE_PARAMETERS,
        ),
        "boto_client_for": (list(inspect.signature(build).parameters), CLIENT_PARAMETERS),
    }
    for name, (parameters, expected) in found.items():
        if parameters != expected:
            raise ConfigurationError(
                f"moto {name} has parameters {parameters}, expected {expected}", remediation=remediation
            )
    for module_name in CLIENT_MODULES:
        if not hasattr(importlib.import_module(module_name), "boto_client_for"):
            raise ConfigurationError(
                f"moto module {module_name} no longer imports boto_client_for", remediation=remediation
            )
    for module_name, source in JSONPATH_MODULES.items():
        found_parse = getattr(importlib.import_module(module_name), "parse", None)
        if getattr(found_parse, "__wrapped__", found_parse) is not _jsonpath_parse(source):
            raise ConfigurationError(
                f"moto module {module_name} no longer imports parse from {source}", remediation=remediation
            )


def _jsonpath_parse(source: str) -> Callable[[str], Any]:
    parse: Callable[[str], Any] = importlib.import_module(source).parse
    return parse


@contextmanager
def moto_caches_installed(parsed_definitions: Path | None = None) -> Iterator[ParseCache]:
    """Cache definitions' parses (also on disk in ``parsed_definitions`` when given) and Task states' clients
    in this block; moto's own functions after it."""
    from taskrunner.local.lambda_runner import MOTO_VERSION

    verify_moto_caches_seam()
    parser = importlib.import_module(PARSER_MODULE).AmazonStateLanguageParser
    build = importlib.import_module(CLIENT_MODULE).boto_client_for
    original_parse = parser.__dict__["parse"]
    disk = ParsedDefinitions(parsed_definitions, MOTO_VERSION) if parsed_definitions else None
    parses = ParseCache(original_parse.__func__, disk=disk)
    clients = ClientCache(build)
    modules: list[Any] = [importlib.import_module(name) for name in CLIENT_MODULES]
    patched = [module for module in modules if module.boto_client_for is build]
    jsonpaths = {  # the modules not yet patched (an enclosing block may have patched them)
        name: module
        for name, module in ((name, importlib.import_module(name)) for name in JSONPATH_MODULES)
        if vars(module)["parse"] is _jsonpath_parse(JSONPATH_MODULES[name])
    }
    parser.parse = staticmethod(parses)
    for module in patched:
        module.boto_client_for = clients
    for name, module in jsonpaths.items():  # a parsed JSONPath is an immutable tree: find() never changes it
        cached = functools.lru_cache(maxsize=PARSED_JSONPATHS)(_jsonpath_parse(JSONPATH_MODULES[name]))
        setattr(module, "parse", cached)  # noqa: B010 - moto's module global
    try:
        yield parses
    finally:
        parser.parse = original_parse
        for module in patched:
            module.boto_client_for = build
        for name, module in jsonpaths.items():
            setattr(module, "parse", _jsonpath_parse(JSONPATH_MODULES[name]))  # noqa: B010
