"""The web console in a real browser: sign in, watch a run progress on its graph, cancel it, find a gate in
the inbox and decide on it with the browser-held key, all with the keyboard too, and without one console
error or CSP violation on any page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from console_browser import MIRROR_TOKEN, TENANT, Browser, Served, browser, served, sign_in
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

__all__ = ["browser", "served"]  # fixtures
pytestmark = pytest.mark.xdist_group("browser")

# quick steps, one of which takes long enough to be seen running, a parallel pair, then a gate
PROGRESS_PACK = """\
apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: console-progress, version: 1.0.0}
spec:
  approvals:
    - {id: release, grants: [packs.approve], requiredCount: 1, expiresAfter: PT1H}
  sandbox: {mode: sealed, egressAllowlist: []}
  steps:
    - {id: build, run: {uses: sleep, with: {seconds: 2}}}
    - id: checks
      parallel:
        steps:
          - {id: lint, run: {uses: sleep, with: {seconds: 1}}}
          - {id: unit, run: {uses: noop, with: {check: unit}}}
    - id: release-gate
      gate.approval: {approval: release, message: "Release?"}
    - {id: publish, run: {uses: noop, with: {phase: publish}}}
"""


def statuses(browser: Browser) -> dict[str, str]:
    """Each graph node's step id and status, as the page shows them."""
    found: dict[str, str] = browser.driver.execute_script(
        "const out = {}; for (const n of document.querySelectorAll('#graph [data-step]'))"
        " out[n.dataset.step] = n.dataset.status; return out;"
    )
    return found


def node_text(browser: Browser, step: str) -> str:
    return str(
        browser.driver.execute_script(
            'return document.querySelector(`#graph [data-step="${arguments[0]}"]`).textContent', step
        )
    )


def test_sign_in_lands_on_the_runs_and_sign_out_returns_to_the_form(served: Served, browser: Browser) -> None:
    run = served.submit((Path(__file__).parents[2] / "examples/packs/hello.yaml").read_text(encoding="utf-8"))
    served.wait_over(run["runId"])
    browser.open("", ready="#/sign-in")
    assert browser.driver.find_element(By.ID, "dev-sign-in").is_displayed()
    browser.shot("sign-in")

    sign_in(browser, "olga")

    assert browser.driver.find_element(By.ID, "who").text == "olga · console"
    link = browser.driver.find_element(By.CSS_SELECTOR, f'#runs a[href="#/runs/{run["runId"]}"]')
    assert link.is_displayed()
    browser.shot("runs")
    link.click()
    browser.wait_ready(f"#/runs/{run['runId']}")
    verdict = browser.wait(lambda d: d.find_elements(By.ID, "evidence-verdict"))[0]
    assert verdict.get_attribute("data-verified") == "true", verdict.text
    assert "report" in browser.driver.find_element(By.ID, "artifacts").text
    assert statuses(browser) == {"greet": "succeeded", "report": "succeeded"}
    browser.shot("finished-run")
    browser.driver.back()
    browser.wait_ready("#/runs")
    browser.driver.find_element(By.ID, "status-filter").send_keys("failed")
    browser.driver.find_element(By.CSS_SELECTOR, "#runs-filter button").click()
    browser.wait_ready("#/runs?status=failed")
    assert browser.driver.find_elements(By.CSS_SELECTOR, f'a[href="#/runs/{run["runId"]}"]') == []

    browser.driver.find_element(By.ID, "sign-out").click()
    browser.wait(lambda d: d.find_elements(By.ID, "dev-sign-in"), message="the sign-in form did not return")
    assert browser.driver.execute_script("return sessionStorage.getItem('taskrunner.token')") is None


def test_a_run_progresses_on_the_graph_without_a_reload(served: Served, browser: Browser) -> None:
    sign_in(browser, "olga")
    run = served.submit(PROGRESS_PACK)
    browser.open(f"#/runs/{run['runId']}")
    browser.driver.execute_script("window.sameDocument = true")
    first = statuses(browser)
    assert set(first) >= {"build", "checks", "lint", "unit", "release-gate", "publish"}
    assert first["release-gate"] == "pending"

    browser.wait(
        lambda _: statuses(browser)["release-gate"] == "waiting", message="the gate never showed waiting"
    )

    now = statuses(browser)
    assert (now["build"], now["lint"], now["unit"], now["publish"]) == ("succeeded",) * 3 + ("pending",)
    assert browser.driver.execute_script("return window.sameDocument") is True  # updated in place
    assert "waiting" in node_text(browser, "release-gate")  # the status is written, not only coloured
    log = browser.driver.find_element(By.ID, "log").text
    assert "step.succeeded" in log or "step.completed" in log, log[:2000]
    gate_link = browser.driver.find_element(By.CSS_SELECTOR, "a.gate-link")
    assert gate_link.get_attribute("href").endswith(f"#/runs/{run['runId']}/gates/release-gate")
    browser.shot("run-page", readme="run-page")
    served.request("POST", f"/api/runs/{run['runId']}/cancel", served.token("operator"), {})


def test_cancel_from_the_run_page(served: Served, browser: Browser) -> None:
    run = served.submit_airgap()
    served.wait_gate(run["runId"])
    sign_in(browser, "olga")
    browser.open(f"#/runs/{run['runId']}")
    browser.driver.execute_script("window.sameDocument = true")

    browser.driver.find_element(By.ID, "cancel-run").click()

    browser.wait(lambda d: d.find_element(By.CSS_SELECTOR, "#run-status [data-status]").text == "cancelled")
    assert served.run(run["runId"])["status"] == "cancelled"
    browser.wait(lambda _: statuses(browser)["review"] == "cancelled", message="the gate node stayed waiting")
    # the page re-renders as the sealed run's artifacts and evidence arrive: wait for its final form
    browser.wait(lambda d: d.find_element(By.ID, "resume-run").is_displayed(), message="no Resume button")
    assert browser.driver.find_elements(By.ID, "cancel-run") == []  # nothing left to cancel
    assert browser.driver.execute_script("return window.sameDocument") is True


def test_a_reader_sees_no_run_actions(served: Served, browser: Browser) -> None:
    run = served.submit_airgap()
    served.wait_gate(run["runId"])
    sign_in(browser, "rita", ["packs.read"])
    browser.open(f"#/runs/{run['runId']}")
    assert browser.driver.find_elements(By.ID, "cancel-run") == []
    browser.open(f"#/runs/{run['runId']}/gates/review")
    assert "cannot decide" in browser.driver.find_element(By.ID, "cannot-decide").text
    served.request("POST", f"/api/runs/{run['runId']}/cancel", served.token("operator"), {})


def test_the_gate_page_shows_what_is_being_approved_and_no_secret(served: Served, browser: Browser) -> None:
    run = served.submit_airgap()
    served.wait_gate(run["runId"])
    sign_in(browser, "ann")
    browser.open("#/approvals")
    card = browser.driver.find_element(By.CSS_SELECTOR, f'#inbox [data-run="{run["runId"]}"]')
    assert "airgap-import 2.1.0" in card.text
    assert "your decision is needed" in card.text
    browser.shot("approvals")

    card.find_element(By.CSS_SELECTOR, "a.gate-link").click()
    browser.wait_ready(f"#/runs/{run['runId']}/gates/review")

    facts = browser.driver.find_element(By.ID, "gate-facts").text
    assert "airgap-import 2.1.0" in facts
    assert run["planHash"] == browser.driver.find_element(By.ID, "plan-hash").text
    assert f"Import bundle {served.bundle} into the mirror" in facts
    assert "h" in browser.driver.find_element(By.ID, "time-left").text  # hours left of PT4H
    inputs = browser.driver.find_element(By.ID, "inputs").text
    assert str(served.bundle) in inputs
    assert "<secret env:MIRROR_TOKEN>" in inputs
    assert MIRROR_TOKEN not in browser.driver.page_source
    remaining = browser.driver.find_element(By.ID, "remaining").text
    assert "policy (gate.policy)" in remaining
    assert "publish (run)" in remaining
    assert browser.driver.find_element(By.ID, "approve").is_enabled()
    browser.shot("gate-page", readme="gate-page")
    served.request("POST", f"/api/runs/{run['runId']}/cancel", served.token("operator"), {})


def test_keyboard_alone_reaches_approve_from_the_inbox(served: Served, browser: Browser) -> None:
    run = served.submit_airgap()
    served.wait_gate(run["runId"])
    sign_in(browser, "kim")
    browser.open("#/approvals")
    target = f"#/runs/{run['runId']}/gates/review"

    def tab_to(predicate: Any, limit: int = 40) -> Any:
        for _ in range(limit):
            browser.driver.switch_to.active_element.send_keys(Keys.TAB)
            active = browser.driver.switch_to.active_element
            if predicate(active):
                return active
        raise AssertionError("Tab never reached the element")

    link = tab_to(lambda e: (e.get_attribute("href") or "").endswith(target))
    link.send_keys(Keys.ENTER)
    browser.wait_ready(target)
    reason = tab_to(lambda e: e.get_attribute("id") == "reason")
    reason.send_keys("checked by keyboard")
    approve = tab_to(lambda e: e.get_attribute("id") == "approve", limit=3)
    outline = browser.driver.execute_script("return getComputedStyle(arguments[0]).outlineStyle", approve)
    assert outline != "none"  # focus is visible
    browser.shot("keyboard-approve")
    served.request("POST", f"/api/runs/{run['runId']}/cancel", served.token("operator"), {})


def decide_in_browser(
    served: Served,
    browser: Browser,
    approver: str,
    button: str,
    reason: str,
    tenant: str = TENANT,
    pending: bool = False,
) -> dict[str, Any]:
    """Open a new airgap run's gate as ``approver`` and press ``button`` (approve/reject) with ``reason``.
    With ``pending`` (the tenant's enrolment policy is ``confirm``), the first press must show the key
    awaiting confirmation; an administrator confirms it and the decision is made again."""
    run = served.submit_airgap(tenant)
    served.wait_gate(run["runId"], tenant=tenant)
    sign_in(browser, approver, tenant=tenant)
    browser.open(f"#/runs/{run['runId']}/gates/review")
    browser.driver.find_element(By.ID, "reason").send_keys(reason)

    def outcome(*ids: str) -> Any:
        def found(driver: Any) -> Any:
            for element_id in ids:
                if driver.find_elements(By.ID, element_id):
                    return driver.find_element(By.ID, element_id)
            return driver.find_elements(By.CSS_SELECTOR, "#decision-status .problem")

        shown = browser.wait(found)
        return shown[0] if isinstance(shown, list) else shown

    browser.driver.find_element(By.ID, button).click()
    shown = outcome("decision-done", "key-pending")
    assert shown.get_attribute("id") == ("key-pending" if pending else "decision-done"), shown.text
    if pending:
        assert "awaiting confirmation" in shown.text
        browser.shot("key-pending")
        keys = served.request("GET", "/api/approvers/keys", served.token(approver, tenant=tenant))[1]
        [key] = keys["items"]
        assert key["status"] == "pending"
        admin = served.token("admin", ["packs.admin"], tenant)
        status, confirmed = served.request(
            "POST", f"/api/approvers/{approver}/keys/{key['keyId']}/confirm", admin, {}
        )
        assert status == 200, confirmed
        browser.driver.find_element(By.ID, button).click()
        shown = outcome("decision-done")
        assert shown.get_attribute("id") == "decision-done", shown.text
    return run


def test_approving_with_the_browser_key_completes_the_run_and_its_evidence_verifies(
    served: Served, browser: Browser, tmp_path: Path
) -> None:
    run = decide_in_browser(served, browser, "avery", "approve", "bundle checked")

    final = served.wait_over(run["runId"])
    assert final["status"] == "succeeded"
    browser.open(f"#/runs/{run['runId']}")
    verdict = browser.wait(lambda d: d.find_elements(By.ID, "evidence-verdict"))[0]
    assert verdict.get_attribute("data-verified") == "true", verdict.text
    # the browser's key is one that cannot be exported
    assert (
        browser.driver.execute_script(
            "const db = await new Promise(r => { const q = indexedDB.open('taskrunner-console', 1); q.onsuccess = () => r(q.result); });"
            "const rec = await new Promise(r => { const q = db.transaction('approver-keys').objectStore('approver-keys').get('console/avery'); q.onsuccess = () => r(q.result); });"
            "return rec.privateKey.extractable;"
        )
        is False
    )
    bundle, public = tmp_path / "evidence.tar.gz", tmp_path / "signing.pub.pem"
    exported = served.cli("runs", "export", run["runId"], "-o", str(bundle))
    assert exported.returncode == 0, exported.stderr
    public.write_text(served.cli("keys", "export-public").stdout, encoding="utf-8")
    verified = served.cli("verify", str(bundle), "--trust", str(public), "--require-dsse")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    browser.open("#/keys")
    assert "(this browser)" in browser.driver.find_element(By.ID, "keys").text
    browser.shot("keys")


def test_rejecting_with_a_key_an_administrator_confirmed_fails_the_run(
    served: Served, browser: Browser
) -> None:
    tenant = "console-confirm"
    policy = served.cli("approvals", "policy", "--tenant", tenant, "--enrolment", "confirm")
    assert policy.returncode == 0, policy.stderr

    run = decide_in_browser(served, browser, "rowan", "reject", "wrong bundle", tenant, pending=True)

    final = served.wait_over(run["runId"], tenant=tenant)
    assert final["status"] == "failed"
    operator = served.token("operator", tenant=tenant)
    gate = served.request("GET", f"/api/runs/{run['runId']}/gates/review", operator)[1]
    assert gate["status"] == "rejected"
    assert [(d["approver"], d["decision"], d["reason"]) for d in gate["decisions"]] == [
        ("rowan", "reject", "wrong bundle")
    ]
