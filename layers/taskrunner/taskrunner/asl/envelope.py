"""The run envelope: the fixed states around every compiled plan, loaded from ``envelope.asl.json``.

The template is plain ASL with two markers: ``{{comment}}`` (the definition's Comment) and a state named
``{{steps}}``. The compiled steps replace that state: every
``Next`` pointing at it goes to the first compiled state instead, and the steps continue with the marker's
own ``Next``. Uncaught step errors go to :data:`FAILURE_STATE`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from taskrunner.errors import ConfigurationError

ENVELOPE_FILE = "envelope.asl.json"
STEPS_MARKER = "{{steps}}"
COMMENT_MARKER = "{{comment}}"
FAILURE_STATE = "SealFailure"


@dataclass
class Envelope:
    """One fresh copy of the envelope, ready to take the compiled steps."""

    definition: dict[str, Any]
    continuation: str  # where the compiled steps go when they are done

    @property
    def states(self) -> dict[str, Any]:
        return self.definition["States"]

    def splice(self, entry: str | None) -> None:
        """Point every transition into the steps at ``entry`` (the continuation when there are none)."""
        target = entry or self.continuation
        if self.definition["StartAt"] == STEPS_MARKER:
            self.definition["StartAt"] = target
        for state in self.states.values():
            if state.get("Next") == STEPS_MARKER:
                state["Next"] = target


def load_envelope(*, comment: str) -> Envelope:
    """A fresh envelope with the comment filled in and the steps marker removed."""
    text = _template_text().replace(COMMENT_MARKER, json.dumps(comment)[1:-1])
    definition = json.loads(text)
    marker = definition["States"].pop(STEPS_MARKER)
    return Envelope(definition=definition, continuation=marker["Next"])


@lru_cache(maxsize=1)
def _template_text() -> str:
    text = resources.files("taskrunner.asl").joinpath(ENVELOPE_FILE).read_text(encoding="utf-8")
    try:
        states = json.loads(text)["States"]
        marker_next = states[STEPS_MARKER]["Next"]
    except (ValueError, KeyError, TypeError) as exc:
        raise _broken(f"it is not ASL with a {STEPS_MARKER!r} marker state that has a Next ({exc})") from exc
    for required in (marker_next, FAILURE_STATE):
        if required not in states:
            raise _broken(f"it has no state {required!r}")
    if COMMENT_MARKER not in text:
        raise _broken(f"it does not contain {COMMENT_MARKER!r}")
    return text


def _broken(reason: str) -> ConfigurationError:
    return ConfigurationError(
        f"The run envelope template taskrunner/asl/{ENVELOPE_FILE} is unusable: {reason}.",
        remediation="Reinstall taskrunner or restore the file from the release.",
    )
