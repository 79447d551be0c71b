"""Resolve the identifiers AWS calls name to the ARNs IAM authorizes, from moto's in-memory state."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MotoResourceLookup:
    """A :class:`taskrunner.local.aws_requests.ResourceLookup` over moto's backends."""

    region: str
    account_id: str

    def secret_arn(self, secret_id: str) -> str:
        """The secret's full ARN (with its random suffix); a name that exists nowhere keeps the name."""
        from moto.secretsmanager.models import secretsmanager_backends

        secret = secretsmanager_backends[self.account_id][self.region].secrets.get(secret_id)
        if secret is not None:
            return str(secret.arn)
        if secret_id.startswith("arn:"):
            return secret_id
        return f"arn:aws:secretsmanager:{self.region}:{self.account_id}:secret:{secret_id}"

    def kms_key_arn(self, key_id: str) -> str:
        """The ARN of the key a key id, key ARN, alias or alias ARN names."""
        from moto.kms.models import kms_backends

        backend = kms_backends[self.account_id][self.region]
        try:
            key = backend.keys.get(backend.any_id_to_key_id(key_id))
        except Exception:  # an unknown alias: authorize against what was named
            key = None
        if key is not None:
            return str(key.arn)
        if key_id.startswith("arn:"):
            return key_id
        return f"arn:aws:kms:{self.region}:{self.account_id}:{key_id if key_id.startswith('alias/') else 'key/' + key_id}"

    def state_machine_of_token(self, task_token: str) -> str | None:
        """The state machine whose running execution waits for ``task_token``; None if none does."""
        from moto.stepfunctions.responses import get_backend

        backend = get_backend(self.account_id, self.region)
        for machine in backend.state_machines:
            for execution in machine.executions:
                worker = getattr(execution, "exec_worker", None)
                pool = getattr(getattr(worker, "env", None), "callback_pool_manager", None)
                if pool is not None and pool.get(task_token) is not None:
                    return str(machine.arn)
        return None
