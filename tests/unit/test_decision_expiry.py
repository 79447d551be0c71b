"""A decision envelope is valid from its gate's opening to the gate's expiry (give or take the clock skew)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from taskrunner.engine.approvals import CLOCK_SKEW, envelope_expiry
from taskrunner.store.records import GateRecord

OPENED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GATE = GateRecord(
    runId="r-1",
    tenantId="acme",
    gateId="review",
    approvalId="sign-off",
    planHash="sha256:" + "0" * 64,
    openedAt=OPENED,
    expiresAt=OPENED + timedelta(hours=4),
)
NOW = OPENED + timedelta(hours=1)


@pytest.mark.parametrize(
    ("decided_at", "now"),
    [
        (OPENED, NOW),
        (OPENED - CLOCK_SKEW, NOW),
        (NOW, NOW),
        (NOW + CLOCK_SKEW, NOW),
        (OPENED + timedelta(hours=4), OPENED + timedelta(hours=4)),
    ],
)
def test_a_decision_inside_the_gates_window_is_valid(decided_at: datetime, now: datetime) -> None:
    assert envelope_expiry(GATE, decided_at, now) is None


@pytest.mark.parametrize(
    ("decided_at", "now", "code"),
    [
        (OPENED - CLOCK_SKEW - timedelta(seconds=1), NOW, "ApprovalEnvelopeExpired"),
        (OPENED - timedelta(days=30), NOW, "ApprovalEnvelopeExpired"),
        (
            OPENED + timedelta(hours=4) + CLOCK_SKEW + timedelta(seconds=1),
            OPENED + timedelta(hours=5),
            "ApprovalEnvelopeExpired",
        ),
        (NOW + CLOCK_SKEW + timedelta(seconds=1), NOW, "ApprovalEnvelopeNotYetValid"),
    ],
)
def test_a_decision_outside_it_is_refused_with_the_window_in_the_remediation(
    decided_at: datetime, now: datetime, code: str
) -> None:
    refused = envelope_expiry(GATE, decided_at, now)

    assert refused is not None
    assert refused.code == code
    assert refused.status == 403
    assert "2026-03-01T12:00:00" in refused.remediation  # when the gate opened
    assert "2026-03-01T16:00:00" in refused.remediation  # when it expires


def test_a_gate_without_an_expiry_bounds_decisions_by_its_opening_only() -> None:
    gate = GATE.model_copy(update={"expiresAt": None})
    assert envelope_expiry(gate, OPENED + timedelta(days=400), OPENED + timedelta(days=400)) is None
    assert envelope_expiry(gate, OPENED - timedelta(hours=1), NOW) is not None
