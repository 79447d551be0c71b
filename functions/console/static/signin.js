// Signing in: the development form of `taskrunner serve`, or OIDC authorization code + PKCE in the cloud.

import { api, setToken } from "./api.js";
import { h, problemBox, show } from "./dom.js";

const PKCE_KEY = "taskrunner.pkce";
const SCOPES = ["packs.read", "packs.run", "packs.approve"];

function base64Url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function redirectUri() {
  return `${location.origin}/console/`;
}

async function discovery(issuer) {
  const response = await fetch(`${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`);
  if (!response.ok) throw new Error(`The issuer's discovery document answered HTTP ${response.status}.`);
  return response.json();
}

async function startOidc(oidc) {
  const meta = await discovery(oidc.issuer);
  const verifier = base64Url(crypto.getRandomValues(new Uint8Array(32)));
  const state = base64Url(crypto.getRandomValues(new Uint8Array(16)));
  const challenge = base64Url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state, route: location.hash || "#/runs" }));
  const query = new URLSearchParams({
    response_type: "code",
    client_id: oidc.clientId,
    redirect_uri: redirectUri(),
    scope: oidc.scopes.join(" "),
    state,
    code_challenge: challenge,
    code_challenge_method: "S256",
  });
  location.assign(`${meta.authorization_endpoint}?${query}`);
}

/** Finish an OIDC sign-in when the issuer redirected back with ?code=...&state=...; true when it did. */
export async function finishOidc(config) {
  const params = new URLSearchParams(location.search);
  const oidc = config.signIn.oidc;
  if (!oidc || !params.has("code")) return false;
  const saved = JSON.parse(sessionStorage.getItem(PKCE_KEY) || "null");
  sessionStorage.removeItem(PKCE_KEY);
  if (!saved || saved.state !== params.get("state")) throw new Error("The sign-in answer does not match the request; sign in again.");
  const meta = await discovery(oidc.issuer);
  const response = await fetch(meta.token_endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code: params.get("code"),
      redirect_uri: redirectUri(),
      client_id: oidc.clientId,
      code_verifier: saved.verifier,
    }),
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error_description || answer.error || `HTTP ${response.status}`);
  setToken(answer.access_token || answer.id_token);
  history.replaceState(null, "", `/console/${saved.route}`);
  return true;
}

function devForm(onSignedIn) {
  const status = h("div", { "aria-live": "polite" });
  const boxes = SCOPES.map((scope) =>
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "scope", value: scope, checked: true }), ` ${scope}`));
  const form = h("form", { id: "dev-sign-in", class: "stack" },
    h("p", {}, "Development sign-in of ", h("code", {}, "taskrunner serve"), ": a local token for any subject and tenant."),
    h("label", { for: "subject" }, "Subject (who you are)"),
    h("input", { id: "subject", name: "subject", required: true, value: "local-developer", autocomplete: "username" }),
    h("label", { for: "tenant" }, "Tenant"),
    h("input", { id: "tenant", name: "tenant", required: true, value: "default" }),
    h("fieldset", {}, h("legend", {}, "Scopes"), ...boxes),
    h("button", { type: "submit", id: "sign-in" }, "Sign in"),
    status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    try {
      const answer = await api("/console/dev-sign-in", {
        method: "POST",
        body: { subject: data.get("subject"), tenant: data.get("tenant"), scopes: data.getAll("scope") },
      });
      setToken(answer.token);
      onSignedIn();
    } catch (error) {
      status.replaceChildren(problemBox(error));
    }
  });
  return form;
}

/** The sign-in page for what `config.json` offers. */
export function signInPage(config, onSignedIn) {
  const parts = [];
  const oidc = config.signIn.oidc;
  if (oidc) {
    const button = h("button", { type: "button", id: "oidc-sign-in" }, `Sign in with ${new URL(oidc.issuer).host}`);
    const status = h("div", { "aria-live": "polite" });
    button.addEventListener("click", () => startOidc(oidc).catch((error) => status.replaceChildren(problemBox(error))));
    parts.push(h("p", {}, button), status);
  }
  if (config.signIn.dev) parts.push(devForm(onSignedIn));
  if (!parts.length) parts.push(h("p", { role: "alert" }, "This deployment offers no sign-in: set the ConsoleOidcClientId parameter."));
  show("Sign in", ...parts);
}
