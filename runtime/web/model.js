// The page's copy of the tree: nodes with their points, the schema's types, and which
// nodes changed since the screen was last drawn. Events are applied with the merge rule's
// first key (a point older than the one held is ignored), so the snapshot and the stream
// can overlap without going back in time.

export const model = {
  root: "",
  nodes: new Map(),   // id -> node
  types: new Map(),   // type name -> schema type (with .byName: point name -> point schema)
  dirty: new Set(),   // ids whose points changed since the last draw
  shape: 0,           // counts nodes coming, going, moving or renamed (the tree and the
                      // children index are made again when it moved on)
};

function reshaped() {
  model.shape++;
}

// "TYPE\u0000KEY": a point's place in its node.
export const pkey = (type, key) => type + "\u0000" + (key === undefined || key === "" ? "0" : key);

export function setSchema(list) {
  model.types.clear();
  for (const t of list) {
    t.byName = new Map(t.points.map((p) => [p.name, p]));
    model.types.set(t.name, t);
  }
}

export function pointSchema(type, name) {
  const t = model.types.get(type);
  return t ? t.byName.get(name) : undefined;
}

function toNode(j) {
  const n = {
    id: j.id,
    type: j.type,
    parents: j.parents || [],
    points: new Map(),
    deleted: !!j.deleted,
  };
  for (const p of j.points || []) n.points.set(pkey(p.type, p.key), p);
  return n;
}

// Replaces the whole copy with GET /v1/nodes.
export function setNodes(list, root) {
  model.root = root;
  model.nodes.clear();
  for (const j of list) model.nodes.set(j.id, toNode(j));
  reshaped();
}

// Puts (or replaces) one node from GET /v1/nodes/{id}.
export function putNode(j) {
  const old = model.nodes.get(j.id);
  const n = toNode(j);
  if (old) {
    // Keep points the stream delivered after this answer was made.
    for (const [k, p] of old.points) {
      const q = n.points.get(k);
      if (!q || newer(p, q)) n.points.set(k, p);
    }
  }
  model.nodes.set(j.id, n);
  reshaped();
  model.dirty.add(j.id);
}

export function dropNode(id) {
  model.nodes.delete(id);
  reshaped();
}

// RFC 3339 UTC with nanoseconds: equal lengths compare as text.
function newer(a, b) {
  if (a.time.length === b.time.length) return a.time > b.time;
  return Date.parse(a.time) > Date.parse(b.time);
}

// Applies one `points` event; returns false when the node is not known here (fetch it).
export function applyEvent(ev) {
  const n = model.nodes.get(ev.node);
  if (!n) return false;
  if (ev.up !== undefined) return false; // an edge changed: the caller refetches the node
  for (const p of ev.points) {
    const k = pkey(p.type, p.key);
    const q = n.points.get(k);
    if (!q || !newer(q, p)) {
      n.points.set(k, p);
      if (p.type === "description") reshaped(); // its name, and so its place, changed
    }
  }
  model.dirty.add(ev.node);
  return true;
}

// The live point TYPE[KEY] of a node, or undefined (missing or tombstoned).
export function point(n, type, key) {
  const p = n ? n.points.get(pkey(type, key)) : undefined;
  return p && !p.tombstone ? p : undefined;
}

export function text(n, type) {
  const p = point(n, type);
  return p ? p.text : "";
}

export function value(n, type) {
  const p = point(n, type);
  return p ? p.value : undefined;
}

// Children of id (live edges only), sorted by name then id. The index is rebuilt once
// after the tree's shape changed, not per call.
let kids = new Map();
let kidsFor = null;

export function children(id) {
  if (kidsFor !== model.shape) {
    kids = new Map();
    for (const n of model.nodes.values()) {
      if (n.deleted) continue;
      for (const p of n.parents) {
        if (!kids.has(p)) kids.set(p, []);
        kids.get(p).push(n);
      }
    }
    for (const list of kids.values()) {
      list.sort((a, b) => label(a).localeCompare(label(b)) || a.id.localeCompare(b.id));
    }
    kidsFor = model.shape;
  }
  return kids.get(id) || [];
}

// What a node is called on screen: its description (a notification: its subject or
// message), else its id.
export function label(n) {
  return text(n, "description") || text(n, "subject") || text(n, "message") || n.id;
}

// True when `anc` is `id` or above it.
export function isAncestor(anc, id) {
  const seen = new Set();
  const walk = [id];
  while (walk.length) {
    const x = walk.pop();
    if (x === anc) return true;
    if (seen.has(x)) continue;
    seen.add(x);
    const n = model.nodes.get(x);
    if (n) walk.push(...n.parents);
  }
  return false;
}

// Types that may be created under a node of type parentType.
export function childTypes(parentType) {
  const out = [];
  for (const t of model.types.values()) {
    if (t.name === "device") continue;
    if (!t.parents || t.parents.includes(parentType)) out.push(t.name);
  }
  return out.sort();
}

// Formats a point's value for its schema (number with unit, bool, enum/text).
export function formatPoint(p, ps) {
  if (!p) return "";
  if (ps && (ps.kind === "text" || ps.kind === "enum")) return p.text;
  if (ps && ps.kind === "bool") return p.value ? "true" : "false";
  if (!ps && p.text !== "") return p.text;
  return formatNumber(p.value, ps);
}

export function formatNumber(v, ps) {
  if (typeof v !== "number") return "";
  if (ps && ps.unit === "ns" && v === 0) return "never";
  if (ps && ps.unit === "ns" && v > 1e17) return new Date(v / 1e6).toLocaleString();
  if (ps && ps.kind === "integer") return String(Math.round(v));
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a >= 1000 || a === 0 ? v.toFixed(1) : v.toPrecision(4).replace(/\.?0+$/, "");
}

// "3 s ago" for a point's time.
export function ago(time) {
  const ms = Date.now() - Date.parse(time);
  if (!(ms >= 0)) return "";
  if (ms < 1000) return "now";
  if (ms < 60e3) return Math.floor(ms / 1000) + " s ago";
  if (ms < 3600e3) return Math.floor(ms / 60e3) + " min ago";
  if (ms < 86400e3) return Math.floor(ms / 3600e3) + " h ago";
  return new Date(time).toLocaleDateString();
}
