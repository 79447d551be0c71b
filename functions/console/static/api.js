// The TaskRunner API from the browser: the signed-in token, JSON requests, the SSE log stream.

const TOKEN_KEY = "taskrunner.token";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

function base64UrlJson(part) {
  const text = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
  return JSON.parse(decodeURIComponent(Array.from(text, (c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0")).join("")));
}

/** The claims of the signed-in token (not verified here: the API verifies every request), or null. */
export function claims() {
  const value = token();
  if (!value) return null;
  try {
    const payload = base64UrlJson(value.split(".")[1]);
    if (payload.exp && payload.exp * 1000 < Date.now()) return null;
    return payload;
  } catch {
    return null;
  }
}

export function scopes() {
  const value = claims()?.scope || "";
  return new Set(String(value).split(/[\s,]+/).filter(Boolean));
}

/** A JSON request; `bearer` overrides the signed-in token (the approve route takes an approval token). */
export async function api(path, { method = "GET", body, bearer } = {}) {
  const headers = { Accept: "application/json" };
  const credential = bearer || token();
  if (credential) headers.Authorization = `Bearer ${credential}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let document = null;
  try {
    document = text ? JSON.parse(text) : null;
  } catch {
    document = { detail: text.slice(0, 200) };
  }
  if (!response.ok) throw new ApiError(response.status, document);
  return document;
}

function parseEvent(block) {
  const event = { id: null, type: "message", data: [] };
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "id") event.id = value;
    else if (field === "event") event.type = value;
    else if (field === "data") event.data.push(value);
  }
  return event.data.length ? { ...event, data: event.data.join("\n") } : null;
}

/**
 * Follow the run's log as Server-Sent Events read from a fetch body (EventSource cannot send the
 * Authorization header). After the stream ends, `more()` says whether to reconnect (with Last-Event-ID).
 * Returns a function that stops following.
 */
export function followLog(runId, onEvent, more) {
  const controller = new AbortController();
  let lastId = null;
  let stopped = false;
  async function once() {
    const headers = { Accept: "text/event-stream", Authorization: `Bearer ${token()}` };
    if (lastId !== null) headers["Last-Event-ID"] = lastId;
    const response = await fetch(`/api/runs/${encodeURIComponent(runId)}/logs`, { headers, signal: controller.signal });
    if (!response.ok || !response.body) throw new ApiError(response.status, await response.json().catch(() => null));
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = parseEvent(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (!event) continue;
        if (event.id !== null) lastId = event.id;
        try {
          onEvent(JSON.parse(event.data));
        } catch (error) {
          if (!(error instanceof SyntaxError)) throw error;
        }
      }
    }
  }
  (async () => {
    while (!stopped) {
      try {
        await once();
      } catch (error) {
        if (stopped || error.name === "AbortError") return;
      }
      if (stopped || !(await more())) return;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  })();
  return () => {
    stopped = true;
    controller.abort();
  };
}
