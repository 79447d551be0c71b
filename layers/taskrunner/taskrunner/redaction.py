"""Secret redaction: the only form in which a secret may leave the step executor.

Policy ``hash`` replaces a value with ``hmac-sha256:<hex>`` keyed by the deployment redaction key
(stable, comparable, not reversible); policy ``blank`` replaces it with ``<redacted>``.

A value is replaced in every form in which the executor writes text (:func:`written_forms`), and a cut
(an excerpt, a byte window) never leaves the beginning of a value behind (:meth:`Redactor.clip`).
"""

from __future__ import annotations

import codecs
import hashlib
import hmac
import json
from collections.abc import Iterable
from typing import Any, Literal

RedactionPolicy = Literal["hash", "blank"]
BLANK = "<redacted>"


def fingerprint(value: str, key: bytes) -> str:
    """``hmac-sha256:<hex>`` of ``value`` under ``key``."""
    return "hmac-sha256:" + hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def redacted_form(value: str, policy: RedactionPolicy, key: bytes) -> str:
    return fingerprint(value, key) if policy == "hash" else BLANK


def written_forms(value: str) -> set[str]:
    """``value`` as written raw, JSON-escaped (``\\uXXXX`` for non-ASCII or not) and Python-escaped (repr)."""
    return {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
    }


def decode_window(data: bytes, *, cut: bool) -> str:
    """UTF-8 text of ``data``; when it was ``cut`` from longer output, a character cut by its end is dropped."""
    return codecs.getincrementaldecoder("utf-8")(errors="replace").decode(data, final=not cut)


class Redactor:
    """Replaces every occurrence of known secret values, in each written form, in text, bytes and JSON values."""

    def __init__(self, secrets: Iterable[str], policy: RedactionPolicy = "blank", key: bytes = b"") -> None:
        pairs = {form: redacted_form(s, policy, key) for s in secrets if s for form in written_forms(s)}
        # Longest first, so a value that contains another is replaced whole.
        self._pairs = sorted(pairs.items(), key=lambda pair: len(pair[0]), reverse=True)
        self._byte_pairs = [(form.encode("utf-8", "surrogatepass"), r.encode()) for form, r in self._pairs]
        self.longest = max((len(form) for form, _ in self._byte_pairs), default=0)
        """Length in bytes of the longest form: a window holding fewer bytes can hold no whole value."""

    def __bool__(self) -> bool:
        return bool(self._pairs)

    def text(self, text: str) -> str:
        for value, replacement in self._pairs:
            if value in text:
                text = text.replace(value, replacement)
        return text

    def bytes(self, data: bytes) -> bytes:
        for value, replacement in self._byte_pairs:
            if value in data:
                data = data.replace(value, replacement)
        return data

    def clip(self, text: str, limit: int, *, cut: bool = False) -> str:
        """``text`` redacted and cut to ``limit`` characters. At a cut (also ``cut``: ``text`` was itself cut
        from something longer) any tail that could begin a secret in some form is dropped too."""
        text = self.text(text)
        if len(text) > limit:
            text, cut = text[:limit], True
        if not cut:
            return text
        for n in range(min(len(text), max((len(v) for v, _ in self._pairs), default=0)), 0, -1):
            tail = text[-n:]
            if any(value.startswith(tail) for value, _ in self._pairs):
                return text[:-n]
        return text

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
        self._keep = max(redactor.longest - 1, 0)
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
