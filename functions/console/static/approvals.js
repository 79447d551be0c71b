// #/approvals (the inbox), #/runs/{runId}/gates/{gateId} (decide) and #/keys (my approver keys).

import { api, claims } from "./api.js";
import { announce, badge, duration, h, problemBox, show, when } from "./dom.js";
import { browserKey, enrol, existingKey, signDecision } from "./signing.js";

function gateHref(item) {
  return `#/runs/${item.runId}/gates/${encodeURIComponent(item.gateId)}`;
}

function decisionsList(decisions) {
  if (!decisions.length) return h("p", {}, "No decisions yet.");
  return h("ul", { id: "decisions" }, ...decisions.map((d) =>
    h("li", {}, `${d.approver}: `, badge(d.decision), " ", when(d.decidedAt), d.reason ? ` — “${d.reason}”` : "")));
}

export async function approvalsPage() {
  let page;
  try {
    page = await api("/api/approvals");
  } catch (error) {
    show("Approvals", problemBox(error));
    return;
  }
  if (!page.items.length) {
    show("Approvals", h("p", { id: "inbox-empty" }, "Nothing is waiting for a decision."));
    return;
  }
  show("Approvals", h("ul", { id: "inbox", class: "cards" }, ...page.items.map((item) =>
    h("li", { class: "card", "data-run": item.runId, "data-gate": item.gateId },
      h("h2", {}, h("a", { href: gateHref(item), class: "gate-link" }, `${item.packName} ${item.packVersion} — gate ${item.gateId}`)),
      h("p", {}, item.reason || item.message || "No reason given."),
      h("p", { class: "meta" }, `${item.decisions.filter((d) => d.decision === "approve").length} of ${item.requiredCount} approvals · opened `,
        when(item.openedAt), " · expires ", when(item.expiresAt),
        item.canDecide ? h("strong", {}, " · your decision is needed") : " · you cannot decide")))));
}

async function decide(detail, decision, reason, status) {
  const me = claims();
  status.replaceChildren("Preparing your key…");
  const key = await browserKey(me.tenant_id, me.sub);
  const enrolled = await enrol(key);
  if (enrolled.status !== "active") {
    status.replaceChildren(h("p", { id: "key-pending", role: "status" },
      `Your key ${enrolled.keyId.slice(0, 12)}… is ${enrolled.status}: awaiting confirmation by an administrator. Decide again once it is confirmed.`));
    return null;
  }
  status.replaceChildren("Signing…");
  const path = `/api/runs/${detail.runId}/gates/${encodeURIComponent(detail.gateId)}`;
  const approval = await api(`${path}/approval-token`, { method: "POST", body: {} });
  const envelope = await signDecision(key, {
    approver: me.sub, decidedAt: new Date().toISOString(), decision, gateId: detail.gateId,
    planHash: detail.planHash, reason, runId: detail.runId, tenantId: me.tenant_id,
  });
  return api(`/api/runs/${detail.runId}/approve`, {
    method: "POST",
    bearer: approval.token,
    body: { gateId: detail.gateId, decision, reason, planHash: detail.planHash, envelope },
  });
}

function decisionForm(detail, reload) {
  const status = h("div", { id: "decision-status", "aria-live": "polite" });
  const reason = h("textarea", { id: "reason", name: "reason", rows: 3, maxlength: 4000 });
  const form = h("form", { id: "decide", class: "stack" },
    h("label", { for: "reason" }, "Reason (recorded in the signed ledger)"), reason,
    h("div", { class: "actions" },
      h("button", { type: "submit", name: "decision", value: "approve", id: "approve", class: "primary" }, "Approve"),
      h("button", { type: "submit", name: "decision", value: "reject", id: "reject", class: "danger" }, "Reject")),
    status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const decision = event.submitter?.value === "reject" ? "reject" : "approve";
    for (const button of form.querySelectorAll("button")) button.disabled = true;
    try {
      const gate = await decide(detail, decision, reason.value, status);
      if (gate) {
        status.replaceChildren(h("p", { id: "decision-done", role: "status" },
          `Recorded: ${decision}. The gate is ${gate.status} (${gate.approvals} of ${gate.requiredCount} approvals).`));
        announce(`Decision recorded: ${decision}`);
        setTimeout(reload, 800);
      }
    } catch (error) {
      status.replaceChildren(problemBox(error));
    } finally {
      for (const button of form.querySelectorAll("button")) button.disabled = false;
    }
  });
  return form;
}

function inputsTable(inputs) {
  const names = Object.keys(inputs);
  if (!names.length) return h("p", {}, "No inputs.");
  return h("table", { id: "inputs" }, h("tbody", {}, ...names.map((name) =>
    h("tr", {}, h("th", { scope: "row" }, name), h("td", {}, h("code", {}, JSON.stringify(inputs[name])))))));
}

export async function gatePage(runId, gateId, reload) {
  let detail;
  try {
    detail = await api(`/api/runs/${encodeURIComponent(runId)}/gates/${encodeURIComponent(gateId)}`);
  } catch (error) {
    show(`Gate ${gateId}`, problemBox(error));
    return;
  }
  const approvals = detail.decisions.filter((d) => d.decision === "approve").length;
  const facts = h("dl", { class: "facts", id: "gate-facts" },
    h("dt", {}, "Pack"), h("dd", {}, `${detail.pack.name} ${detail.pack.version}`),
    h("dt", {}, "Plan"), h("dd", {}, h("code", { id: "plan-hash" }, detail.planHash)),
    h("dt", {}, "Run"), h("dd", {}, h("a", { href: `#/runs/${detail.runId}` }, detail.runId)),
    h("dt", {}, "Status"), h("dd", { id: "gate-status" }, badge(detail.status)),
    h("dt", {}, "Reason"), h("dd", {}, detail.reason || "—"),
    h("dt", {}, "Message"), h("dd", {}, detail.message || "—"),
    h("dt", {}, "Approvals"), h("dd", {}, `${approvals} of ${detail.requiredCount}`),
    h("dt", {}, "Time left"), h("dd", { id: "time-left" }, detail.status === "waiting" ? duration(detail.secondsLeft) : "closed"),
    h("dt", {}, "Grants needed"), h("dd", {}, detail.grants.join(", ") || "—"));
  const next = detail.remainingSteps.length
    ? h("ol", { id: "remaining" }, ...detail.remainingSteps.map((st) => h("li", {}, `${st.stepId} (${st.kind})`)))
    : h("p", {}, "Nothing runs after this gate.");
  const decide = detail.canDecide
    ? decisionForm(detail, reload)
    : h("p", { id: "cannot-decide" }, detail.status === "waiting" ? "You cannot decide on this gate (you decided already or lack a grant)." : `This gate is ${detail.status}.`);
  show(`Approve ${detail.pack.name} ${detail.pack.version}: gate ${detail.gateId}`, facts,
    h("section", { "aria-labelledby": "inputs-h" }, h("h2", { id: "inputs-h" }, "Inputs"), inputsTable(detail.inputs)),
    h("section", { "aria-labelledby": "next-h" }, h("h2", { id: "next-h" }, "Steps still to run"), next),
    h("section", { "aria-labelledby": "dec-h" }, h("h2", { id: "dec-h" }, "Decisions"), decisionsList(detail.decisions)),
    h("section", { "aria-labelledby": "you-h" }, h("h2", { id: "you-h" }, "Your decision"), decide));
}

export async function keysPage() {
  const me = claims();
  let items = [];
  let failure = null;
  try {
    items = (await api("/api/approvers/keys")).items;
  } catch (error) {
    failure = problemBox(error);
  }
  const local = await existingKey(me.tenant_id, me.sub).catch(() => null);
  const status = h("div", { id: "keys-status", "aria-live": "polite" });
  const revoke = (key) => async () => {
    if (!confirm(`Revoke key ${key.keyId.slice(0, 16)}…? Decisions signed with it stop being accepted.`)) return;
    try {
      await api(`/api/approvers/keys/${encodeURIComponent(key.keyId)}`, { method: "DELETE" });
      announce("Key revoked");
      await keysPage();
    } catch (error) {
      status.replaceChildren(problemBox(error));
    }
  };
  const rows = items.map((k) => h("tr", { "data-key": k.keyId },
    h("td", {}, h("code", {}, k.keyId.slice(0, 16)), local && local.keyId === k.keyId ? " (this browser)" : ""),
    h("td", {}, k.label), h("td", {}, badge(k.status)), h("td", {}, when(k.enrolledAt)), h("td", {}, k.confirmedBy || "—"),
    h("td", {}, k.status === "revoked" ? "" : h("button", { type: "button", class: "danger", onclick: revoke(k) }, "Revoke"))));
  show("My keys",
    h("p", {}, `Keys that sign your decisions as ${me.sub} in tenant ${me.tenant_id}. This browser's key never leaves it.`),
    failure, status,
    items.length
      ? h("table", { id: "keys" }, h("thead", {}, h("tr", {}, ...["Key", "Label", "Status", "Enrolled", "Confirmed by", ""].map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, ...rows))
      : h("p", {}, "No keys enrolled yet: your first decision enrols this browser's key."));
}
