"""Invoke one built function as the Lambda Python runtime does; run with ``python3.11 -S -E -s``.

    lambda_invoke.py TASK_ROOT OPT_DIR EVENT_FILE

sys.path is Lambda's for Python 3.11: the function's code (/var/task), the layers (/opt/python/lib/
python3.11/site-packages, /opt/python), then the standard library only - no site-packages, so nothing that
is not in the layer can be imported. ``$_HANDLER`` names the handler. The last line of stdout is the
invocation's answer: the handler's JSON result, or Lambda's ``{"errorType", "errorMessage"}`` payload.
"""

import importlib
import json
import os
import sys
import time
import traceback
import uuid

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


def main(task_root: str, opt: str, event_file: str) -> dict:
    sys.path[:] = [task_root, f"{opt}/python/lib/python3.11/site-packages", f"{opt}/python", *STDLIB]
    module_name, _, function_name = os.environ["_HANDLER"].rpartition(".")
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception as exc:  # what the runtime reports for a module that fails to import
        return error("Runtime.ImportModuleError", exc)
    with open(event_file, encoding="utf-8") as f:
        event = json.load(f)
    try:
        return handler(event, Context(time.monotonic() + 29))
    except Exception as exc:
        return error(type(exc).__name__, exc)


if __name__ == "__main__":
    answer = main(*sys.argv[1:4])
    sys.stdout.flush()
    print("\n" + json.dumps(answer))
