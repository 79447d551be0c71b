// #/runs: the tenant's runs, newest first, filtered by status, a page at a time.

import { api } from "./api.js";
import { badge, h, problemBox, show, when } from "./dom.js";

const STATUSES = ["", "pending", "running", "succeeded", "failed", "cancelled"];

export async function runsPage(query) {
  const status = query.get("status") || "";
  const cursor = query.get("cursor");
  const select = h("select", { id: "status-filter", name: "status" },
    ...STATUSES.map((value) => h("option", { value, selected: value === status }, value || "any status")));
  const filter = h("form", { class: "inline", id: "runs-filter" },
    h("label", { for: "status-filter" }, "Status "), select, h("button", { type: "submit" }, "Filter"));
  filter.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = select.value ? `#/runs?status=${select.value}` : "#/runs";
  });
  let page;
  try {
    page = await api(`/api/runs?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
  } catch (error) {
    show("Runs", filter, problemBox(error));
    return;
  }
  const items = page.items.filter((run) => !status || run.status === status);
  const rows = items.map((run) =>
    h("tr", { "data-run": run.runId },
      h("td", {}, h("a", { href: `#/runs/${run.runId}` }, run.runId)),
      h("td", {}, `${run.packName} ${run.packVersion}`),
      h("td", {}, badge(run.status)),
      h("td", {}, when(run.requestedAt)),
      h("td", {}, when(run.completedAt))));
  const table = h("table", { id: "runs" },
    h("caption", {}, status ? `Runs with status ${status}, newest first` : "Runs, newest first"),
    h("thead", {}, h("tr", {}, ...["Run", "Pack", "Status", "Requested", "Completed"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, ...rows));
  const next = page.nextCursor
    ? h("a", { id: "next-page", href: `#/runs?${new URLSearchParams({ ...(status ? { status } : {}), cursor: page.nextCursor })}` }, "Next page")
    : null;
  show("Runs", filter, items.length ? table : h("p", {}, "No runs on this page."), h("p", {}, cursor ? h("a", { href: "#/runs" }, "First page") : null, " ", next));
}
