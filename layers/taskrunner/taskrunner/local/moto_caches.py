"""Caches at moto's Step Functions seam: one parse per definition and per JSONPath, one boto3 client per
(region, service).

moto (pinned, :data:`taskrunner.local.lambda_runner.MOTO_VERSION`) parses a state machine's definition again
for every execution (``AmazonStateLanguageParser.parse``), builds a new JSONPath parser and parses the path
again for every path a state reads (``extract_json`` calls ``jsonpath_ng.ext.parse``, imported by name into
:data:`JSONPATH_MODULE`; about half a millisecond each, several per Task state, on the way from one state to
the next) and builds a new boto3 client for every Task state (``boto_client_for``, imported by name into each
module listed in :data:`CLIENT_MODULES`). A parsed program or path holds no per-execution state (executions
keep theirs in their own environment; ``find`` only reads the path), and boto3 clients are thread-safe once
created, so all three are cached for as long as :func:`moto_caches_installed` is active.
A module whose ``boto_client_for`` was already replaced (the IAM seam in :mod:`taskrunner.local.authorization`
makes its own clients, one per role) is left as it is.
"""

from __future__ import annotations

import importlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from taskrunner.errors import ConfigurationError

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
JSONPATH_MODULE = "moto.stepfunctions.parser.asl.utils.json_path"
PARSE_PARAMETERS = ["definition"]
PARSED_DEFINITIONS = 64  # distinct definitions kept parsed
JSONPATH_PARAMETERS = ["path", "debug"]
PARSED_PATHS = 4096  # distinct JSONPaths kept parsed
CLIENT_PARAMETERS = ["region", "service", "state_credentials"]


class ParseCache:
    """A parse function memoised on the text it parses, the ``size`` most recently used kept (a long-running
    process sees ever new plans); errors are not cached."""

    def __init__(self, parse: Callable[[str], Any], size: int = PARSED_DEFINITIONS) -> None:
        self._parse = parse
        self._size = size
        self._parsed: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.parses = 0

    def __len__(self) -> int:
        return len(self._parsed)

    def __call__(self, text: str) -> Any:
        with self._lock:  # parsing is CPU-bound: serialising it costs nothing and parses each text once
            if text in self._parsed:
                self._parsed.move_to_end(text)
            else:
                self._parsed[text] = self._parse(text)
                self.parses += 1
                if len(self._parsed) > self._size:
                    self._parsed.popitem(last=False)
            return self._parsed[text]


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
    json_path = importlib.import_module(JSONPATH_MODULE)
    if not callable(getattr(json_path, "parse", None)) or not callable(
        getattr(json_path, "extract_json", None)
    ):
        raise ConfigurationError(
            f"moto module {JSONPATH_MODULE} no longer parses paths with an imported 'parse'",
            remediation=remediation,
        )
    found = {
        "AmazonStateLanguageParser.parse": (
            list(inspect.signature(parser.parse).parameters),
            PARSE_PARAMETERS,
        ),
        "boto_client_for": (list(inspect.signature(build).parameters), CLIENT_PARAMETERS),
        "json_path.parse": (list(inspect.signature(json_path.parse).parameters), JSONPATH_PARAMETERS),
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


@contextmanager
def moto_caches_installed() -> Iterator[ParseCache]:
    """Cache definitions' and JSONPaths' parses and Task states' clients in this block; moto's own functions
    after it. Yields the definitions' cache."""
    verify_moto_caches_seam()
    parser = importlib.import_module(PARSER_MODULE).AmazonStateLanguageParser
    build = importlib.import_module(CLIENT_MODULE).boto_client_for
    json_path: Any = importlib.import_module(JSONPATH_MODULE)
    original_parse, original_path_parse = parser.__dict__["parse"], json_path.parse
    parses = ParseCache(original_parse.__func__)
    clients = ClientCache(build)
    modules: list[Any] = [importlib.import_module(name) for name in CLIENT_MODULES]
    patched = [module for module in modules if module.boto_client_for is build]
    parser.parse = staticmethod(parses)
    json_path.parse = ParseCache(original_path_parse, PARSED_PATHS)
    for module in patched:
        module.boto_client_for = clients
    try:
        yield parses
    finally:
        parser.parse = original_parse
        json_path.parse = original_path_parse
        for module in patched:
            module.boto_client_for = build
