// The pack's graph as SVG: steps top to bottom, the children of parallel and map steps side by side,
// each node coloured by its status and labelled with it (the colour is never the only cue).

import { s } from "./dom.js";

const NODE_W = 168, NODE_H = 46, GAP = 14, HEADER = 26, PAD = 10;

function label(text, max = 22) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function node(step, x, y) {
  const shape = step.kind.startsWith("gate")
    ? s("rect", { x, y, width: NODE_W, height: NODE_H, rx: 18, class: "node-shape" })
    : s("rect", { x, y, width: NODE_W, height: NODE_H, rx: 4, class: "node-shape" });
  return s("g", { class: `node st-${step.status}`, "data-step": step.stepId, "data-status": step.status },
    s("title", {}, `${step.stepId} (${step.kind}): ${step.status}`),
    shape,
    s("text", { x: x + 10, y: y + 19, class: "node-id" }, label(step.stepId)),
    s("text", { x: x + 10, y: y + 36, class: "node-status" }, `${step.kind} · ${step.status}`));
}

/** The SVG graph of `steps` (a run's steps, depth first, with parentId). */
export function graph(steps) {
  const children = new Map();
  for (const step of steps) {
    if (!step.parentId) continue;
    if (!children.has(step.parentId)) children.set(step.parentId, []);
    children.get(step.parentId).push(step);
  }
  const top = steps.filter((step) => !step.parentId);
  const width = Math.max(1, ...top.map((step) => (children.get(step.stepId) || []).length)) * (NODE_W + GAP) + 2 * PAD + GAP;
  const parts = [];
  let y = PAD;
  let previousBottom = null;
  const centre = width / 2;
  for (const step of top) {
    const kids = children.get(step.stepId) || [];
    if (previousBottom !== null) parts.push(s("line", { x1: centre, y1: previousBottom, x2: centre, y2: y, class: "edge" }));
    if (!kids.length) {
      parts.push(node(step, centre - NODE_W / 2, y));
      previousBottom = y + NODE_H;
      y += NODE_H + 2 * GAP;
      continue;
    }
    const boxW = kids.length * (NODE_W + GAP) + GAP;
    const boxX = centre - boxW / 2;
    const boxH = HEADER + NODE_H + GAP;
    parts.push(s("g", { class: `group st-${step.status}`, "data-step": step.stepId, "data-status": step.status },
      s("title", {}, `${step.stepId} (${step.kind}): ${step.status}`),
      s("rect", { x: boxX, y, width: boxW, height: boxH, rx: 6, class: "group-shape" }),
      s("text", { x: boxX + 10, y: y + 17, class: "node-id" }, `${label(step.stepId, 30)} · ${step.kind} · ${step.status}`)));
    kids.forEach((kid, i) => parts.push(node(kid, boxX + GAP + i * (NODE_W + GAP), y + HEADER)));
    previousBottom = y + boxH;
    y += boxH + 2 * GAP;
  }
  return s("svg", {
    id: "graph", role: "img", "aria-labelledby": "graph-title", viewBox: `0 0 ${width} ${y}`,
    width, height: y, class: "graph",
  }, s("title", { id: "graph-title" }, "The run's steps and their status"), ...parts);
}
