// Building the page from data: elements are created, text is set as text (never parsed as HTML).

const SVG_NS = "http://www.w3.org/2000/svg";

function build(element, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** An HTML element: h("a", {href: "#/runs"}, "Runs"). */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Replace the main area with `nodes` and give it a heading the screen reader announces. */
export function show(title, ...nodes) {
  const main = document.getElementById("main");
  main.replaceChildren(h("h1", { id: "page-title" }, title), ...nodes);
  document.title = `${title} · TaskRunner`;
}

/** Say `text` to assistive technology (the polite live region). */
export function announce(text) {
  document.getElementById("announce").textContent = text;
}

/** A problem (RFC 9457) or any error as an alert box. */
export function problemBox(error) {
  const detail = error.problem?.detail || error.message || String(error);
  const remediation = error.problem?.remediation;
  return h("div", { class: "problem", role: "alert" },
    h("strong", {}, error.problem?.title || "Something went wrong"), ": ", detail,
    remediation ? h("p", { class: "remediation" }, "How to fix: ", remediation) : null);
}

/** "2026-01-02T03:04:05.678Z" as local date and time. */
export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return h("time", { datetime: iso, title: iso }, date.toLocaleString());
}

/** Seconds as "1 h 5 min" / "42 s". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "no expiry";
  if (seconds <= 0) return "expired";
  const hours = Math.floor(seconds / 3600), minutes = Math.floor((seconds % 3600) / 60);
  if (hours) return `${hours} h ${minutes} min`;
  if (minutes) return `${minutes} min ${seconds % 60} s`;
  return `${seconds} s`;
}

/** A status as a badge: a word and a shape, not only a colour. */
export function badge(status) {
  return h("span", { class: `badge st-${status}`, "data-status": status }, status);
}
