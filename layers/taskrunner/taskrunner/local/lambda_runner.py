"""In-process Lambda runner: moto invokes the real handlers named in ``template.yaml`` in this process.

moto runs Lambda functions in Docker from ``LambdaFunction._invoke_lambda``. :meth:`InProcessLambdaRunner.installed`
replaces that one method (the seam, verified against moto ``MOTO_VERSION`` only) with a runner that imports
each function's handler from its CodeUri file, calls it with the decoded event and a Lambda-like context,
and answers as Lambda does: the JSON result, or for an exception the
``{"errorType", "errorMessage", "stackTrace"}`` payload flagged as a function error, so Step Functions sees
``Error = errorType`` and its Retry/Catch rules apply.

Environment: Step Functions runs Map/Parallel branches in threads, so several handlers run at once, and
``os.environ`` is process-global. Each invocation therefore sees its function's own environment through a
context-local overlay of ``os.environ`` (:mod:`taskrunner.local.environ`): the function's template
variables plus what Lambda sets (``AWS_LAMBDA_FUNCTION_NAME``, ``_HANDLER``, ``_X_AMZN_TRACE_ID`` fresh per
invocation, ...). Variables every function agrees on are also set in the process environment
(:func:`shared_environment`), for code that runs outside handlers.

Timeout: the handler runs in its own thread (with a copy of the caller's context, so the overlay and
the IAM principal follow it) and the caller gets ``Sandbox.Timedout`` as soon as the function's
``Timeout`` passes. Python cannot stop a thread: the abandoned handler runs on in the background until
it returns, its result is discarded, and its AWS calls are still authorized as the function.
"""

from __future__ import annotations

import contextvars
import importlib.util
import inspect
import json
import os
import secrets
import sys
import threading
import time
import traceback
import uuid
from collections import ChainMap
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from taskrunner.errors import ConfigurationError
from taskrunner.local.authorization import Principal, acting_as
from taskrunner.local.environ import environment_overlay, overlay_installed

MOTO_VERSION = "5.2.5"

_install_lock = threading.Lock()
_active: InProcessLambdaRunner | None = None


@dataclass(frozen=True)
class LocalFunction:
    """A function the runner can invoke; ``name`` is the (moto) Lambda function name."""

    name: str
    arn: str
    handler_file: Path
    handler_function: str
    timeout: int
    memory_size: int
    environment: Mapping[str, str | None] = field(default_factory=dict)  # None: not set for this function
    tracing: bool = False

    @property
    def region(self) -> str:
        return self.arn.split(":")[3]

    def lambda_environment(self) -> dict[str, str]:
        """What the Lambda runtime sets for the function (per invocation: see :func:`_invocation_env`)."""
        env = {
            "AWS_LAMBDA_FUNCTION_NAME": self.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_size),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.name}",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
            "LAMBDA_TASK_ROOT": str(self.handler_file.parent),
            "_HANDLER": f"{self.handler_file.stem}.{self.handler_function}",
        }
        if self.tracing:
            env |= {"AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000", "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR"}
        return env


def trace_id() -> str:
    """A fresh X-Ray trace header as Lambda sets it in ``_X_AMZN_TRACE_ID``."""
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=1"


@dataclass(frozen=True)
class InvocationResult:
    """What Lambda answers: the JSON payload text and whether it is a function error."""

    payload: str
    is_error: bool

    def json(self) -> Any:
        return json.loads(self.payload)


class LambdaContext:
    """The parts of the AWS Lambda Python context object handlers and Powertools use."""

    def __init__(self, function: LocalFunction, request_id: str, deadline: float) -> None:
        self.function_name = function.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function.arn
        self.memory_limit_in_mb = function.memory_size
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{function.name}"
        self.log_stream_name = f"local/[$LATEST]{request_id.replace('-', '')}"
        self.identity = None
        self.client_context = None
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# ------------------------------------------------------------------------------------------ environment
def shared_environment(environments: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """Variables with one value in every function that sets them (the rest only exist per function)."""
    values: dict[str, set[str]] = {}
    for environment in environments.values():
        for key, value in environment.items():
            values.setdefault(key, set()).add(value)
    return {key: next(iter(found)) for key, found in values.items() if len(found) == 1}


@contextmanager
def process_environment(variables: Mapping[str, str | None]) -> Iterator[None]:
    """Set (``None``: unset) variables in ``os.environ`` and restore the previous values on exit."""
    previous = {key: os.environ.get(key) for key in variables}
    try:
        for key, value in variables.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, old in previous.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


# ------------------------------------------------------------------------------------------ runner
class InProcessLambdaRunner:
    """Imports and invokes handlers in-process; :meth:`installed` routes moto's Lambda invocations here."""

    def __init__(
        self,
        functions: Iterable[LocalFunction],
        principal: Callable[[str], Principal | None] = lambda name: None,
    ) -> None:
        self._functions = {fn.name: fn for fn in functions}
        self._principal = principal
        self._handlers: dict[str, Callable[[Any, Any], Any]] = {}
        self._load_lock = threading.Lock()
        self._idle = threading.Condition()
        self._in_flight = 0

    @property
    def functions(self) -> Mapping[str, LocalFunction]:
        return dict(self._functions)

    def define(self, functions: Iterable[LocalFunction]) -> None:
        """Replace the functions (once their environments are resolved); loaded handlers stay loaded."""
        self._functions = {fn.name: fn for fn in functions}

    def invoke(self, function_name: str, event: Any) -> InvocationResult:
        """Run the function's handler on ``event`` and answer like Lambda does."""
        function = self._functions.get(function_name)
        request_id = str(uuid.uuid4())
        if function is None:
            return _error_result(
                "ResourceNotFoundException",
                f"function {function_name!r} is not defined in the local template",
                request_id,
            )
        with self._idle:
            self._in_flight += 1
        try:
            return self._invoke(function, event, request_id)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no handler is running; False if some still run after ``timeout`` seconds."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout)

    @contextmanager
    def installed(self) -> Iterator[InProcessLambdaRunner]:
        """Route moto's Lambda invocations to this runner for the duration of the block."""
        global _active
        verify_moto_seam()
        from moto.awslambda.models import LambdaFunction

        with _install_lock:
            if _active is not None:
                raise ConfigurationError(
                    "an in-process Lambda runner is already installed in this process",
                    remediation="Run one local runtime per process (stop the other one first).",
                )
            _active = self
            original = LambdaFunction.__dict__["_invoke_lambda"]
            LambdaFunction._invoke_lambda = _moto_invoke_lambda  # type: ignore[method-assign]
        try:
            with overlay_installed():
                yield self
        finally:
            with _install_lock:
                LambdaFunction._invoke_lambda = original  # type: ignore[method-assign]
                _active = None

    # -- internals
    def _invoke(self, function: LocalFunction, event: Any, request_id: str) -> InvocationResult:
        started = time.monotonic()
        try:
            handler = self._handler(function)
        except _HandlerUnavailable as exc:
            return _error_result(exc.error_type, exc.message, request_id)
        context = LambdaContext(function, request_id, started + function.timeout)
        outcome: list[InvocationResult] = []

        def call() -> None:
            try:
                result = handler(event, context)
            except Exception as exc:
                outcome.append(_exception_result(exc, request_id))
                return
            try:
                outcome.append(InvocationResult(payload=json.dumps(result), is_error=False))
            except (TypeError, ValueError) as exc:
                outcome.append(
                    _error_result("Runtime.MarshalError", f"Unable to marshal response: {exc}", request_id)
                )

        with ExitStack() as scope:
            scope.enter_context(acting_as(self._principal(function.name)))
            overlay = {**function.environment, **function.lambda_environment()}
            scope.enter_context(environment_overlay(ChainMap({"_X_AMZN_TRACE_ID": trace_id()}, overlay)))
            thread_context = contextvars.copy_context()
        worker = threading.Thread(
            target=thread_context.run,
            args=(call,),
            name=f"lambda-{function.name}-{request_id[:8]}",
            daemon=True,
        )
        worker.start()
        worker.join(max(0.0, started + function.timeout - time.monotonic()))
        if not worker.is_alive() and not outcome:  # the handler raised SystemExit or similar
            return _error_result(
                "Runtime.ExitError", f"RequestId: {request_id} Error: Runtime exited", request_id
            )
        if worker.is_alive() or time.monotonic() - started > function.timeout:
            return _error_result(
                "Sandbox.Timedout",
                f"RequestId: {request_id} Error: Task timed out after {function.timeout:.2f} seconds",
                request_id,
            )
        return outcome[0]

    def _handler(self, function: LocalFunction) -> Callable[[Any, Any], Any]:
        handler = self._handlers.get(function.name)
        if handler is not None:
            return handler
        with self._load_lock:
            if function.name not in self._handlers:
                self._handlers[function.name] = _load_handler(function)
            return self._handlers[function.name]


class _HandlerUnavailable(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def _load_handler(function: LocalFunction) -> Callable[[Any, Any], Any]:
    """Import the handler module by file path under a module name unique to the function."""
    path = function.handler_file
    module_label = path.stem
    module_name = f"taskrunner_local_functions.{function.name}.{module_label}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None or not path.is_file():
        raise _HandlerUnavailable(
            "Runtime.ImportModuleError", f"Unable to import module '{module_label}': no such file {path}"
        )
    module: ModuleType = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise _HandlerUnavailable(
            "Runtime.ImportModuleError", f"Unable to import module '{module_label}': {exc}"
        ) from exc
    handler = getattr(module, function.handler_function, None)
    if not callable(handler):
        raise _HandlerUnavailable(
            "Runtime.HandlerNotFound",
            f"Handler '{function.handler_function}' missing on module '{module_label}' ({path})",
        )
    return handler


def _exception_result(exc: BaseException, request_id: str) -> InvocationResult:
    stack = traceback.format_list(traceback.extract_tb(exc.__traceback__)[1:])
    return _error_result(type(exc).__name__, str(exc), request_id, stack)


def _error_result(
    error_type: str, message: str, request_id: str, stack: list[str] | None = None
) -> InvocationResult:
    payload = {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": stack or [],
    }
    return InvocationResult(payload=json.dumps(payload), is_error=True)


def _decode_event(event: Any) -> Any:
    """moto hands over the parsed JSON payload, or the text ``"{}"`` for an empty one."""
    if event is None or event == "{}":
        return {}
    return event


def _moto_invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
    """Replacement for ``moto.awslambda.models.LambdaFunction._invoke_lambda`` (returns body, errored, logs)."""
    runner = _active
    if runner is None:
        message = "the in-process Lambda runner is not installed"
        return json.dumps({"errorMessage": message, "errorType": "Runtime.Unavailable"}), True, ""
    result = runner.invoke(self.function_name, _decode_event(event))
    return result.payload, result.is_error, ""


def verify_moto_seam() -> None:
    """Fail loudly unless moto is the version whose ``_invoke_lambda`` contract this runner was built for."""
    import moto
    from moto.awslambda.models import LambdaFunction

    remediation = (
        f"Pin moto=={MOTO_VERSION} (pyproject [local] extra), or re-verify the seam "
        "(tests/integration/test_local_seam.py) and update MOTO_VERSION."
    )
    if moto.__version__ != MOTO_VERSION:
        raise ConfigurationError(
            f"moto {moto.__version__} is installed; the in-process Lambda seam is verified for {MOTO_VERSION}",
            remediation=remediation,
        )
    seam = LambdaFunction.__dict__.get("_invoke_lambda")
    parameters = list(inspect.signature(seam).parameters) if seam else []
    if parameters != ["self", "event"]:
        raise ConfigurationError(
            f"moto LambdaFunction._invoke_lambda has parameters {parameters}, expected ['self', 'event']",
            remediation=remediation,
        )
