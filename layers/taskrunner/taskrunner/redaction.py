"""Secret redaction: the only form in which a secret may leave the step executor.

Policy ``hash`` replaces a value with ``hmac-sha256:<hex>`` keyed by the deployment redaction key
(stable, comparable, not reversible); policy ``blank`` replaces it with ``<redacted>``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Any, Literal

RedactionPolicy = Literal["hash", "blank"]
BLANK = "<redacted>"


def fingerprint(value: str, key: bytes) -> str:
    """``hmac-sha256:<hex>`` of ``value`` under ``key``."""
    return "hmac-sha256:" + hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def redacted_form(value: str, policy: RedactionPolicy, key: bytes) -> str:
    return fingerprint(value, key) if policy == "hash" else BLANK


class Redactor:
    """Replaces every occurrence of known secret values in strings and JSON-like structures."""

    def __init__(self, secrets: Iterable[str], policy: RedactionPolicy, key: bytes) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        values = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._pairs = [(v, redacted_form(v, policy, key)) for v in values]

    def __bool__(self) -> bool:
        return bool(self._pairs)

    def text(self, text: str) -> str:
        for value, replacement in self._pairs:
            if value in text:
                text = text.replace(value, replacement)
        return text

    def bytes(self, data: bytes) -> bytes:
        for value, replacement in self._pairs:
            data = data.replace(value.encode("utf-8"), replacement.encode("utf-8"))
        return data

    def value(self, obj: Any) -> Any:
        """Redact a JSON-like value (dict keys and values, lists, strings) recursively."""
        if not self._pairs:
            return obj
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {self.text(str(k)): self.value(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.value(v) for v in obj]
        return obj


class RedactingReader:
    """A binary stream wrapper that redacts secrets even when they straddle read boundaries."""

    def __init__(self, raw: Any, redactor: Redactor) -> None:
        self._raw = raw
        self._redactor = redactor
        self._keep = max((len(v.encode("utf-8")) for v, _ in redactor._pairs), default=1) - 1
        self._pending = b""
        self._out = b""
        self._eof = False

    def readable(self) -> bool:
        return True

    def _fill(self, want: int) -> None:
        while not self._eof and len(self._out) < want:
            chunk = self._raw.read(max(want, 65536))
            if not chunk:
                self._eof = True
                self._out += self._redactor.bytes(self._pending)
                self._pending = b""
                break
            data = self._redactor.bytes(self._pending + chunk)
            # Hold back a tail that could be the start of a secret completed by the next chunk.
            split = max(len(data) - self._keep, 0)
            self._out, self._pending = self._out + data[:split], data[split:]

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            self._fill(1 << 62)
            data, self._out = self._out, b""
            return data
        self._fill(n)
        data, self._out = self._out[:n], self._out[n:]
        return data
