"""Secret references: ``aws-secretsmanager:name[#field]``, ``aws-ssm:/path``, ``env:NAME``."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from taskrunner.errors import TaskRunnerError


class SecretNotFound(TaskRunnerError):
    code = "SecretNotFound"


class SecretResolver:
    """Resolves secret references through Powertools parameter providers (cached) or the environment.

    The providers (and so their caches) belong to this resolver: a value is only ever served to the
    function that was allowed to read it.
    """

    def __init__(self, *, allow_env: bool = True, max_age: int = 300) -> None:
        self._allow_env = allow_env
        self._max_age = max_age
        self._providers: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _provider(self, scheme: str) -> Any:
        from aws_lambda_powertools.utilities import parameters

        with self._lock:
            if scheme not in self._providers:
                kind = (
                    parameters.SecretsProvider if scheme == "aws-secretsmanager" else parameters.SSMProvider
                )
                self._providers[scheme] = kind()
            return self._providers[scheme]

    def resolve(self, ref: str) -> str:
        scheme, _, rest = ref.partition(":")
        if scheme == "env" and self._allow_env:
            if rest not in os.environ:
                raise SecretNotFound(
                    f"secret {ref}: environment variable {rest} is not set",
                    remediation=f"export {rest}=... before running the pack",
                )
            return os.environ[rest]
        from aws_lambda_powertools.utilities import parameters  # lazy: keeps cold start lean

        try:
            if scheme == "aws-secretsmanager":
                name, _, field = rest.partition("#")
                value = str(self._provider(scheme).get(name, max_age=self._max_age))
                return str(json.loads(value)[field]) if field else value
            if scheme == "aws-ssm":
                return str(self._provider(scheme).get(rest, decrypt=True, max_age=self._max_age))
        except (parameters.exceptions.GetParameterError, KeyError, ValueError) as exc:
            raise SecretNotFound(
                f"secret {ref} could not be resolved: {type(exc).__name__}",
                remediation="check the reference and the function's permissions",
            ) from exc
        raise SecretNotFound(
            f"secret {ref}: unsupported reference scheme '{scheme}'",
            remediation="use aws-secretsmanager:name#field, aws-ssm:/path or env:NAME",
        )
