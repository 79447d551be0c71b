// #/runs/{runId}: the graph coloured by live status, attempts and errors, live logs, artifacts, evidence.

import { api, followLog, scopes } from "./api.js";
import { announce, badge, h, problemBox, show, when } from "./dom.js";
import { graph } from "./graph.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

function attempts(step) {
  if (!step.attempts?.length) return "—";
  return h("ol", { class: "attempts" }, ...step.attempts.map((a) =>
    h("li", {}, `#${a.number} `, badge(a.status),
      a.error ? h("span", { class: "error" }, ` ${a.error.code}: ${a.error.message}`) : null,
      a.nextAttemptAt ? h("span", {}, " · retry at ", when(a.nextAttemptAt)) : null)));
}

function stepsTable(run) {
  return h("table", { id: "steps" },
    h("caption", {}, "Steps, attempts and errors"),
    h("thead", {}, h("tr", {}, ...["Step", "Kind", "Status", "Attempts"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, ...run.steps.map((step) =>
      h("tr", { "data-step": step.stepId },
        h("th", { scope: "row" }, step.parentId ? `${step.parentId} › ${step.stepId}` : step.stepId),
        h("td", {}, step.kind), h("td", {}, badge(step.status)), h("td", {}, attempts(step))))));
}

function gatesList(run) {
  if (!run.pendingGates.length) return null;
  return h("section", { "aria-labelledby": "gates-title" }, h("h2", { id: "gates-title" }, "Waiting for approval"),
    h("ul", {}, ...run.pendingGates.map((gate) => h("li", {},
      h("a", { href: `#/runs/${run.runId}/gates/${encodeURIComponent(gate.gateId)}`, class: "gate-link" },
        `Gate ${gate.gateId}`), ` — ${gate.approvals} of ${gate.requiredCount} approvals`, gate.reason ? ` — ${gate.reason}` : ""))));
}

function summary(run) {
  return h("dl", { class: "facts", id: "run-facts" },
    h("dt", {}, "Status"), h("dd", { id: "run-status" }, badge(run.status)),
    h("dt", {}, "Pack"), h("dd", {}, `${run.pack.name} ${run.pack.version}`),
    h("dt", {}, "Plan"), h("dd", {}, h("code", {}, run.planHash)),
    h("dt", {}, "Requested"), h("dd", {}, when(run.requestedAt)),
    h("dt", {}, "Completed"), h("dd", {}, when(run.completedAt)),
    run.error ? h("dt", {}, "Error") : null,
    run.error ? h("dd", { class: "error", id: "run-error" }, `${run.error.code}: ${run.error.message}`) : null);
}

function actions(run, refresh) {
  if (!scopes().has("packs.run")) return null;
  const status = h("div", { "aria-live": "polite" });
  const act = (verb) => async () => {
    try {
      await api(`/api/runs/${run.runId}/${verb}`, { method: "POST", body: {} });
      status.replaceChildren(`${verb === "cancel" ? "Cancel" : "Resume"} requested.`);
      refresh();
    } catch (error) {
      status.replaceChildren(problemBox(error));
    }
  };
  const buttons = [];
  if (!TERMINAL.has(run.status)) buttons.push(h("button", { type: "button", id: "cancel-run", onclick: act("cancel") }, "Cancel run"));
  if (run.status === "failed" || run.status === "cancelled") buttons.push(h("button", { type: "button", id: "resume-run", onclick: act("resume") }, "Resume run"));
  return h("div", { class: "actions" }, ...buttons, status);
}

function artifactsTable(items) {
  if (!items.length) return h("p", {}, "No artifacts.");
  return h("table", { id: "artifacts" },
    h("thead", {}, h("tr", {}, ...["Name", "Type", "SHA-256", "Size", ""].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, ...items.map((a) => h("tr", {},
      h("td", {}, a.name), h("td", {}, a.type), h("td", {}, h("code", { class: "digest" }, a.sha256)), h("td", {}, `${a.size} B`),
      h("td", {}, a.url && /^https?:/.test(a.url) ? h("a", { href: a.url, download: a.name }, `Download ${a.name}`) : "")))));
}

function evidenceBox(evidence) {
  const check = evidence.verification;
  const verdict = check
    ? h("p", { id: "evidence-verdict", class: check.verified ? "ok" : "bad", "data-verified": String(check.verified) },
      check.verified ? "✔ Verified: " : "✘ Not verified: ", check.summary)
    : null;
  return h("dl", { class: "facts", id: "evidence" },
    h("dt", {}, "SHA-256"), h("dd", {}, h("code", { class: "digest" }, evidence.sha256)),
    h("dt", {}, "Size"), h("dd", {}, `${evidence.size} B`),
    h("dt", {}, "Bundle"), h("dd", {}, evidence.url && /^https?:/.test(evidence.url) ? h("a", { href: evidence.url }, "Download the evidence bundle") : evidence.location),
    h("dt", {}, "Verification"), h("dd", {}, verdict || "—"));
}

export async function runPage(runId, setCleanup) {
  let run;
  try {
    run = await api(`/api/runs/${encodeURIComponent(runId)}`);
  } catch (error) {
    show(`Run ${runId}`, problemBox(error));
    return;
  }
  const slots = {
    summary: h("div", {}), actions: h("div", {}), graph: h("figure", { class: "graph-box" }), gates: h("div", {}),
    steps: h("div", {}), artifacts: h("div", {}, "Shown when the run is over."), evidence: h("div", {}, "Sealed when the run is over."),
  };
  const log = h("ol", { id: "log", class: "log" });
  let timer = null;
  let shown = null;
  async function refresh() {
    run = await api(`/api/runs/${encodeURIComponent(runId)}`);
    render();
  }
  function render() {
    if (shown && shown !== run.status) announce(`Run ${run.status}`);
    shown = run.status;
    slots.summary.replaceChildren(summary(run));
    slots.actions.replaceChildren(actions(run, refresh) || "");
    slots.graph.replaceChildren(graph(run.steps), h("figcaption", {}, "Each box names its step, kind and status; parallel and map children sit side by side."));
    slots.gates.replaceChildren(gatesList(run) || "");
    slots.steps.replaceChildren(stepsTable(run));
  }
  let outcomeLoaded = false;
  async function loadOutcome() {
    if (outcomeLoaded) return;
    outcomeLoaded = true;
    try {
      slots.artifacts.replaceChildren(artifactsTable((await api(`/api/runs/${runId}/artifacts`)).items));
    } catch (error) {
      slots.artifacts.replaceChildren(problemBox(error));
    }
    try {
      slots.evidence.replaceChildren(evidenceBox(await api(`/api/runs/${runId}/evidence`)));
    } catch (error) {
      outcomeLoaded = error.status !== 404;  // not sealed yet: look again on the next event
      slots.evidence.replaceChildren(problemBox(error));
    }
  }
  function onEvent(event) {
    log.append(h("li", { class: `lvl-${event.level}` }, when(event.timestamp), ` ${event.eventType}`,
      event.stepId ? ` [${event.stepId}]` : "", ` ${event.message}`,
      event.metadata?.remediation ? h("span", { class: "remediation" }, ` — how to fix: ${event.metadata.remediation}`) : null));
    if (log.children.length > 500) log.firstElementChild.remove();
    clearTimeout(timer);
    timer = setTimeout(() => refresh().catch(() => {}), 150);
  }
  show(`Run ${run.runId}`,
    slots.summary, slots.actions,
    h("section", { "aria-labelledby": "graph-h" }, h("h2", { id: "graph-h" }, "Graph"), slots.graph),
    slots.gates,
    h("section", { "aria-labelledby": "steps-h" }, h("h2", { id: "steps-h" }, "Steps"), slots.steps),
    h("section", { "aria-labelledby": "log-h" }, h("h2", { id: "log-h" }, "Log"), log),
    h("section", { "aria-labelledby": "artifacts-h" }, h("h2", { id: "artifacts-h" }, "Artifacts"), slots.artifacts),
    h("section", { "aria-labelledby": "evidence-h" }, h("h2", { id: "evidence-h" }, "Evidence"), slots.evidence));
  render();
  // The stream ends once the run is over and sealed: then its artifacts and evidence are there to show.
  const stop = followLog(runId, onEvent, async () => {
    await refresh().catch(() => {});
    if (!TERMINAL.has(run.status)) return true;
    await loadOutcome();
    return !outcomeLoaded;
  });
  setCleanup(() => {
    stop();
    clearTimeout(timer);
  });
}
