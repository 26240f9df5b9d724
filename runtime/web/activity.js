// What each rule wrote lately, seen on the event stream (a write's origin is the rule's
// id): the rule editor's "recent writes". Kept per rule, newest first, bounded.

import { model } from "./model.js";

const KEEP = 50;
// What the engine itself keeps on a rule node: not the rule's own doing.
const ENGINE = new Set(["runs", "lastRun", "state", "error"]);
const byRule = new Map(); // rule id -> {items, total}

export function noteEvent(ev) {
  for (const p of ev.points) {
    if (!p.origin || (p.origin === ev.node && ENGINE.has(p.type))) continue;
    const r = model.nodes.get(p.origin);
    if (!r || r.type !== "rule") continue;
    let a = byRule.get(p.origin);
    if (!a) byRule.set(p.origin, (a = { items: [], total: 0 }));
    a.items.unshift({
      time: Date.parse(p.time),
      node: ev.node,
      type: p.type,
      key: p.key,
      value: p.tombstone ? "(deleted)" : p.text !== "" ? JSON.stringify(p.text) : String(p.value),
    });
    if (a.items.length > KEEP) a.items.length = KEEP;
    a.total++;
  }
}

export function activityOf(id) {
  return byRule.get(id) || { items: [], total: 0 };
}
