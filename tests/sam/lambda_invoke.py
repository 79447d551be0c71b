"""Invoke one built function as the Lambda Python runtime does; run with ``python3.11 -S -E -s``.

    lambda_invoke.py TASK_ROOT OPT_DIR EVENT_FILE...

sys.path is Lambda's for Python 3.11: the function's code (/var/task), the layers (/opt/python/lib/
python3.11/site-packages, /opt/python), then the standard library only - no site-packages, so nothing that
is not in the layer can be imported. ``$_HANDLER`` names the handler; one cold start, then one invocation per
event file, in order (a warm container). Each answer is a stdout line ``ANSWER <json>``: the handler's
result, or Lambda's ``{"errorType", "errorMessage"}`` payload.
"""

import importlib
import json
import os
import sys
import time
import traceback
import uuid

ANSWER = "ANSWER "
STDLIB = [p for p in sys.path[1:] if "site-packages" not in p and "dist-packages" not in p]


class Context:
    """The attributes of Lambda's context object."""

    def __init__(self, deadline: float) -> None:
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ["AWS_LAMBDA_FUNCTION_VERSION"]
        self.memory_limit_in_mb = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
        self.invoked_function_arn = (
            f"arn:aws:lambda:{os.environ['AWS_REGION']}:123456789012:function:{self.function_name}"
        )
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.identity = None
        self.client_context = None
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def error(error_type: str, exc: BaseException) -> dict:
    return {
        "errorType": error_type,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_exc().splitlines(),
    }


def invoke(handler, event_file: str) -> dict:
    with open(event_file, encoding="utf-8") as f:
        event = json.load(f)
    timeout = int(os.environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT", "29"))
    try:
        return handler(event, Context(time.monotonic() + timeout))
    except Exception as exc:
        return error(type(exc).__name__, exc)


def main(task_root: str, opt: str, *event_files: str) -> None:
    sys.path[:] = [task_root, f"{opt}/python/lib/python3.11/site-packages", f"{opt}/python", *STDLIB]
    module_name, _, function_name = os.environ["_HANDLER"].rpartition(".")
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception as exc:  # what the runtime reports for a module that fails to import
        failed = error("Runtime.ImportModuleError", exc)
        handler = None
    for event_file in event_files:
        answer = failed if handler is None else invoke(handler, event_file)
        sys.stdout.flush()
        print("\n" + ANSWER + json.dumps(answer), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
