// The approver's key: a WebCrypto ECDSA P-256 key that cannot leave the browser (extractable: false),
// kept in IndexedDB per (tenant, subject), enrolled with the API, signing DSSE decision envelopes.

import { api } from "./api.js";

const DB = "taskrunner-console";
const STORE = "approver-keys";
export const PAYLOAD_TYPE = "application/vnd.stellaops.pack-approval+json";
const encoder = new TextEncoder();

function database() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function stored(mode, action) {
  const db = await database();
  return new Promise((resolve, reject) => {
    const request = action(db.transaction(STORE, mode).objectStore(STORE));
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function base64(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)));
}

function hex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** This browser's key of `tenant`/`subject` if it has one (undefined otherwise). */
export function existingKey(tenant, subject) {
  return stored("readonly", (store) => store.get(`${tenant}/${subject}`));
}

/** This browser's key of `tenant`/`subject`, created on first use: {privateKey, publicKeyPem, keyId}. */
export async function browserKey(tenant, subject) {
  const name = `${tenant}/${subject}`;
  const existing = await existingKey(tenant, subject);
  if (existing) return existing;
  const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
  const spki = await crypto.subtle.exportKey("spki", pair.publicKey);
  const lines = base64(spki).match(/.{1,64}/g).join("\n");
  const record = {
    privateKey: pair.privateKey,
    publicKeyPem: `-----BEGIN PUBLIC KEY-----\n${lines}\n-----END PUBLIC KEY-----\n`,
    keyId: hex(await crypto.subtle.digest("SHA-256", spki)),  // what the API names it: SHA-256 of the SPKI DER
    createdAt: new Date().toISOString(),
  };
  await stored("readwrite", (store) => store.put(record, name));
  return record;
}

/** Enrol the key (the same key again answers its existing record); its ApproverKeyOut. */
export function enrol(key) {
  const label = `console ${navigator.platform || "browser"} ${key.createdAt.slice(0, 10)}`.slice(0, 64);
  return api("/api/approvers/keys", { method: "POST", body: { publicKeyPem: key.publicKeyPem, label } });
}

/** RFC 8785 canonical JSON of an object of strings: keys sorted, no whitespace. */
function canonical(fields) {
  const sorted = {};
  for (const name of Object.keys(fields).sort()) sorted[name] = fields[name];
  return JSON.stringify(sorted);
}

function pae(type, payload) {
  const head = encoder.encode(`DSSEv1 ${encoder.encode(type).length} ${type} ${payload.length} `);
  const out = new Uint8Array(head.length + payload.length);
  out.set(head);
  out.set(payload, head.length);
  return out;
}

/** The DSSE envelope of a decision, signed with `key` (raw r||s ECDSA P-256 SHA-256). */
export async function signDecision(key, decision) {
  const payload = encoder.encode(canonical(decision));
  const signature = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key.privateKey, pae(PAYLOAD_TYPE, payload));
  return { payloadType: PAYLOAD_TYPE, payload: base64(payload), signatures: [{ keyid: key.keyId, sig: base64(signature) }] };
}
