// The console's entry: reads config.json, signs in, routes the hash (#/runs, #/runs/{id}, #/approvals,
// #/runs/{id}/gates/{gateId}, #/keys) to its page.

import { claims, setToken } from "./api.js";
import { approvalsPage, gatePage, keysPage } from "./approvals.js";
import { h, problemBox, show } from "./dom.js";
import { runPage } from "./run.js";
import { runsPage } from "./runs.js";
import { finishOidc, signInPage } from "./signin.js";

let config = null;
let cleanup = null;

function setCleanup(fn) {
  cleanup = fn;
}

function header() {
  const me = claims();
  document.getElementById("who").textContent = me ? `${me.sub} · ${me.tenant_id}` : "";
  document.getElementById("sign-out").hidden = !me;
  const current = location.hash.includes("/gates/") ? "approvals" : location.hash.split("/")[1]?.split("?")[0] || "runs";
  for (const id of ["runs", "approvals", "keys"]) {
    const link = document.getElementById(`nav-${id}`);
    if (current === id) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function route() {
  if (cleanup) cleanup();
  cleanup = null;
  header();
  const main = document.getElementById("main");
  if (!claims()) {
    signInPage(config, route);
    main.setAttribute("data-ready", "#/sign-in");
    return;
  }
  const [path, search] = (location.hash.slice(1) || "/runs").split("?");
  const query = new URLSearchParams(search || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "runs" && parts.length === 1) await runsPage(query);
  else if (parts[0] === "runs" && parts.length === 2) await runPage(parts[1], setCleanup);
  else if (parts[0] === "runs" && parts[2] === "gates" && parts.length === 4) await gatePage(parts[1], parts[3], route);
  else if (parts[0] === "approvals") await approvalsPage();
  else if (parts[0] === "keys") await keysPage();
  else show("Not found", h("p", {}, "No such page. "), h("a", { href: "#/runs" }, "Go to the runs"));
  main.setAttribute("data-ready", location.hash || "#/runs");
  document.dispatchEvent(new CustomEvent("console:rendered"));
}

async function start() {
  document.getElementById("sign-out").addEventListener("click", () => {
    setToken(null);
    location.hash = "#/runs";
    route();
  });
  document.getElementById("skip-link").addEventListener("click", (event) => {
    event.preventDefault();
    document.getElementById("main").focus();
  });
  try {
    config = await (await fetch("/console/config.json")).json();
    await finishOidc(config);
  } catch (error) {
    show("Sign in", problemBox(error));
    return;
  }
  window.addEventListener("hashchange", () => route().catch((error) => show("Error", problemBox(error))));
  await route();
}

start().catch((error) => show("Error", problemBox(error)));
