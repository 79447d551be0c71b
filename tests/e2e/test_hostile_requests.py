"""POST /api/plans with hostile bodies, manifests and inputs, through the submit_run handler as Lambda invokes
it: every answer is a 413 or 422 problem+json naming what is wrong, never a 500 or a crash."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO
from hostile_manifests import hostile_texts, json_values, mutated_packs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from taskrunner.api.bodies import MAX_BODY_DEPTH
from taskrunner.pack.limits import MAX_DEPTH, MAX_MANIFEST_BYTES

EVENT = json.loads((REPO / "events" / "submit_run-create-plan.json").read_text(encoding="utf-8"))
HELLO = (REPO / "examples" / "packs" / "hello.yaml").read_text(encoding="utf-8")
DEEP = 30_000
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


def plan_request(runtime: Any, body: str) -> tuple[int, dict[str, Any]]:
    """POST ``body`` to /api/plans; the status and the JSON answer."""
    result = runtime.invoke("submit_run", {**EVENT, "body": body, "isBase64Encoded": False})
    answer = result.json()
    assert not result.is_error, answer
    headers = {k.lower(): v for k, v in (answer.get("headers") or {}).items()}
    document = json.loads(answer["body"])
    if answer["statusCode"] >= 400:
        assert headers["content-type"].startswith("application/problem+json"), answer
        assert document["status"] == answer["statusCode"]
    return int(answer["statusCode"]), document


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def test_a_valid_plan_request_is_answered(runtime: Any) -> None:
    status, answer = plan_request(runtime, json.dumps({"manifest": HELLO}))
    assert status == 200, answer
    assert answer["planHash"].startswith("sha256:")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("[" * DEEP + "]" * DEEP, f"deeper than {MAX_BODY_DEPTH} levels"),
        ('{"manifest": "a: 1", "inputs": {"x": ' + "9" * 5000 + "}}", "5,000 digits"),
        ('{"manifest": ' + '{"a":' * DEEP + "1" + "}" * DEEP + "}", f"deeper than {MAX_BODY_DEPTH} levels"),
    ],
    ids=["deep-body", "huge-integer", "deep-manifest-object-in-body"],
)
def test_unreadable_bodies_are_a_400(runtime: Any, body: str, fragment: str) -> None:
    status, answer = plan_request(runtime, body)
    assert (status, answer["code"]) == (400, "MalformedBody"), answer
    assert fragment in answer["detail"]


@pytest.mark.parametrize(
    ("manifest", "fragment"),
    [
        ("a: " + "[" * DEEP, f"{MAX_DEPTH} levels"),
        ("[" * DEEP, f"{MAX_DEPTH} levels"),
        ("a: &a [*a]\n", "recursive alias"),
        ("a: " + "9" * 5000 + "\n", "5,000 digits"),
        ("a: 1\nb: x\x00\n", "#x0000"),
        ({"spec": nested(MAX_DEPTH + 2)}, f"{MAX_DEPTH} levels"),  # readable body, too deep a pack
        ("a: !!python/object/apply:os.system [true]\n", "constructor"),
    ],
    ids=[
        "deep-flow-yaml",
        "deep-json",
        "recursive-alias",
        "huge-integer",
        "nul",
        "deep-object",
        "python-tag",
    ],
)
def test_hostile_manifests_are_a_422_naming_the_position(runtime: Any, manifest: Any, fragment: str) -> None:
    status, answer = plan_request(runtime, json.dumps({"manifest": manifest}))
    assert status == 422, answer
    assert answer["code"] == "InvalidPack"
    messages = " ".join(e["message"] for e in answer["errors"])
    assert fragment in messages
    if isinstance(manifest, str):
        assert all(e["line"] is not None for e in answer["errors"]), answer


def test_an_oversized_manifest_is_a_413(runtime: Any) -> None:
    status, answer = plan_request(runtime, json.dumps({"manifest": "a: " + "x" * MAX_MANIFEST_BYTES}))
    assert status == 413, answer
    assert answer["code"] == "ManifestTooLarge"
    assert f"{MAX_MANIFEST_BYTES:,} bytes" in answer["errors"][0]["message"]


def test_deep_inputs_are_a_422(runtime: Any) -> None:
    body = json.dumps({"manifest": HELLO, "inputs": {"who": nested(MAX_DEPTH + 2)}}, indent=None)
    status, answer = plan_request(runtime, body)
    assert status == 422, answer
    assert answer["code"] == "InvalidInputs"
    assert f"{MAX_DEPTH} levels" in answer["errors"][0]["message"]


def test_a_stored_pack_that_is_not_text_is_a_422(runtime: Any, tmp_path: Path) -> None:
    runtime.svc.artifacts.put_bytes("packs/binary.yaml", b"\x89PNG\r\n\x1a\n\x00\xff", "image/png")
    status, answer = plan_request(runtime, json.dumps({"packRef": "packs/binary.yaml"}))
    assert status == 422, answer
    assert "not UTF-8" in answer["errors"][0]["message"]


def test_plan_requests_with_fuzzed_manifests_are_never_a_500(runtime: Any) -> None:
    outcomes: Counter[int] = Counter()
    manifests = st.one_of(
        hostile_texts().map(lambda data: data.decode("utf-8", "replace")),
        mutated_packs(),
        json_values,
    )
    inputs = st.one_of(st.dictionaries(st.sampled_from(["who", "x"]), json_values, max_size=2), json_values)

    @settings(
        max_examples=100,
        deadline=timedelta(seconds=30),  # a hang, not a slow example on a loaded CI machine
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )
    @given(manifests, inputs)
    def check(manifest: Any, values: Any) -> None:
        status, answer = plan_request(runtime, json.dumps({"manifest": manifest, "inputs": values}))
        assert status in (200, 413, 422), answer
        outcomes[status] += 1

    check()
    print(f"POST /api/plans outcomes: {dict(sorted(outcomes.items()))}")
    assert outcomes[422] > 0
