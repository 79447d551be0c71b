"""Headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driving the web console of a
``taskrunner serve`` process started for the module in a fresh TASKRUNNER_HOME.

Without Chromium the tests skip, saying how to install it; with ``CI=true`` they fail instead.
Every page visited is screenshotted under ``build/screenshots/``; any SEVERE browser log entry
(a console error, a CSP violation, a failed request) fails the test that produced it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import PACKS, REPO

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = REPO / "build" / "screenshots"
README_SHOTS = REPO / "docs" / "screenshots"
BIN = Path(sys.executable).parent
MIRROR_TOKEN = "mirror-token-console-never-shown"
TENANT = "console"
ALL_SCOPES = ["packs.read", "packs.run", "packs.approve"]

pytestmark = pytest.mark.xdist_group("browser")


def _require_chromium() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if not missing:
        return
    message = (
        f"{', '.join(missing)} not found: install Chromium and its WebDriver with "
        "'apt-get install chromium chromium-driver' (or 'make browser-tools')"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Served:
    """A running ``taskrunner serve``: its URL, home and environment."""

    url: str
    home: Path
    env: dict[str, str]
    bundle: Path
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)

    def request(self, method: str, path: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def token(self, subject: str, scopes: list[str] = ALL_SCOPES, tenant: str = TENANT) -> str:
        """A development token from the console's own sign-in route."""
        key = (subject, " ".join(scopes) + "@" + tenant)
        if key not in self.tokens:
            body = {"subject": subject, "tenant": tenant, "scopes": scopes}
            status, answer = self.request("POST", "/console/dev-sign-in", body=body)
            assert status == 200, answer
            self.tokens[key] = answer["token"]
        return self.tokens[key]

    def submit(
        self, manifest: str, inputs: dict[str, Any] | None = None, tenant: str = TENANT
    ) -> dict[str, Any]:
        body = {"manifest": manifest, "inputs": inputs or {}}
        status, run = self.request("POST", "/api/runs", self.token("operator", tenant=tenant), body)
        assert status in (200, 201, 202), run
        return dict(run)

    def submit_airgap(self, tenant: str = TENANT) -> dict[str, Any]:
        manifest = (PACKS / "airgap-import.yaml").read_text(encoding="utf-8")
        sha = hashlib.sha256(self.bundle.read_bytes()).hexdigest()
        return self.submit(manifest, {"bundlePath": str(self.bundle), "bundleSha256": sha}, tenant)

    def run(self, run_id: str, tenant: str = TENANT) -> dict[str, Any]:
        status, run = self.request("GET", f"/api/runs/{run_id}", self.token("operator", tenant=tenant))
        assert status == 200, run
        return dict(run)

    def wait_gate(self, run_id: str, timeout: float = 30, tenant: str = TENANT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.run(run_id, tenant)
            if run["pendingGates"]:
                return run
            assert run["status"] in ("pending", "running"), run
            time.sleep(0.1)
        raise AssertionError(f"run {run_id} did not reach its gate in {timeout} s")

    def wait_over(self, run_id: str, timeout: float = 30, tenant: str = TENANT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.run(run_id, tenant)
            over = run["status"] in ("succeeded", "failed", "cancelled") and run["completedAt"]
            token = self.token("operator", tenant=tenant)
            if over and self.request("GET", f"/api/runs/{run_id}/evidence", token)[0] == 200:
                return run  # over and sealed
            time.sleep(0.1)
        raise AssertionError(f"run {run_id} did not finish in {timeout} s")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "taskrunner"), *args], env=self.env, capture_output=True, text=True, timeout=120
        )


def _served_url(process: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and process.poll() is None:
        for line in log.read_text(encoding="utf-8").splitlines():
            if line.startswith("http://127.0.0.1:"):
                return line.strip()
        time.sleep(0.1)
    raise AssertionError(f"serve did not start:\n{log.read_text(encoding='utf-8')[-4000:]}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    _require_chromium()
    home = tmp_path_factory.mktemp("console-home")
    bundle = home / "bundle.tar"
    bundle.write_bytes(b"offline bundle for the console tests\n" * 64)
    env = {**os.environ, "TASKRUNNER_HOME": str(home), "MIRROR_TOKEN": MIRROR_TOKEN}
    log = home / "serve.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(BIN / "taskrunner"), "serve", "--host", "127.0.0.1", "--port", "0"],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            yield Served(_served_url(process, log), home, env, bundle)
        finally:
            process.terminate()
            process.wait(timeout=30)


class Browser:
    """One headless Chromium session; ``shot`` saves a screenshot, ``severe`` drains SEVERE log entries."""

    def __init__(self, url: str) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000"):
            options.add_argument(argument)
        options.add_argument("--disable-dev-shm-usage")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        self.driver.set_script_timeout(30)
        self.url = url
        self.entries: list[dict[str, Any]] = []

    def open(self, route: str, ready: str | None = None) -> None:
        """Load the console at ``route`` and wait until the page ``ready`` (default: that route) rendered."""
        self.driver.get(f"{self.url}/console/{route}")
        self.wait_ready(ready or route or "#/runs")

    def wait_ready(self, route: str, timeout: float = 20) -> None:
        """Until the page for ``route`` rendered (the console marks ``main[data-ready]``)."""
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(self.driver, timeout).until(
            lambda d: d.execute_script("return document.getElementById('main').dataset.ready") == route
        )

    def wait(self, predicate: Any, timeout: float = 30, message: str = "") -> Any:
        """Poll ``predicate`` until truthy; live pages re-render, so a missing or replaced node means "not yet"."""
        from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        ignored = (NoSuchElementException, StaleElementReferenceException)
        wait = WebDriverWait(self.driver, timeout, poll_frequency=0.1, ignored_exceptions=ignored)
        return wait.until(predicate, message)

    def shot(self, name: str, readme: str | None = None) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
        if readme and os.environ.get("TASKRUNNER_UPDATE_SCREENSHOTS") == "1":
            README_SHOTS.mkdir(parents=True, exist_ok=True)
            self.driver.save_screenshot(str(README_SHOTS / f"{readme}.png"))

    def severe(self) -> list[str]:
        entries = self.driver.get_log("browser")
        self.entries += entries
        return [e["message"] for e in entries if e["level"] == "SEVERE"]

    def quit(self) -> None:
        self.driver.quit()


@pytest.fixture
def browser(served: Served) -> Iterator[Browser]:
    session = Browser(served.url)
    try:
        yield session
        errors = session.severe()
        assert errors == [], f"the console logged errors: {errors}"
    finally:
        session.quit()


def sign_in(browser: Browser, subject: str, scopes: list[str] = ALL_SCOPES, tenant: str = TENANT) -> None:
    """Sign in through the development form."""
    from selenium.webdriver.common.by import By

    browser.open("", ready="#/sign-in")
    driver = browser.driver
    subject_box = driver.find_element(By.ID, "subject")
    subject_box.clear()
    subject_box.send_keys(subject)
    tenant_box = driver.find_element(By.ID, "tenant")
    tenant_box.clear()
    tenant_box.send_keys(tenant)
    for box in driver.find_elements(By.CSS_SELECTOR, "input[name=scope]"):
        if box.is_selected() != (box.get_attribute("value") in scopes):
            box.click()
    driver.find_element(By.ID, "sign-in").click()
    browser.wait_ready("#/runs")
