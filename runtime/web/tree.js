// The node tree on the left: expand/collapse, type labels, a badge with each node's
// latest value (or its sync state, or a rule's error), and search by id, description or
// type. The tree is drawn again only when its shape changed; a value that moves only
// updates its own badge.

import { model, children, label, point, text, pointSchema, formatPoint } from "./model.js";

const PAGE = 500; // children drawn per parent before "N more"

const state = {
  el: null,
  selected: "",
  expanded: new Set(),
  collapsed: new Set(),
  filter: "",
  rows: new Map(), // id -> [li]
  onSelect: () => {},
};

export function initTree(el, onSelect) {
  state.el = el;
  state.onSelect = onSelect;
  el.addEventListener("click", (e) => {
    const li = e.target.closest("li.node");
    if (!li) return;
    const id = li.dataset.node;
    if (e.target.closest("button.toggle")) {
      toggle(id);
      return;
    }
    if (e.target.closest("div.row")) select(id);
  });
  el.addEventListener("keydown", (e) => {
    const li = e.target.closest("li.node");
    if (!li) return;
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      select(li.dataset.node);
    } else if (e.key === "ArrowRight" && !isOpen(li.dataset.node)) {
      toggle(li.dataset.node);
    } else if (e.key === "ArrowLeft" && isOpen(li.dataset.node)) {
      toggle(li.dataset.node);
    }
  });
}

function isOpen(id) {
  if (state.filter) return true;
  if (state.expanded.has(id)) return true;
  if (state.collapsed.has(id)) return false;
  const n = model.nodes.get(id);
  return !!n && (id === model.root || n.type === "group" || n.type === "device");
}

function toggle(id) {
  if (isOpen(id)) {
    state.expanded.delete(id);
    state.collapsed.add(id);
  } else {
    state.collapsed.delete(id);
    state.expanded.add(id);
  }
  drawTree();
}

export function select(id) {
  state.selected = id;
  for (const li of state.el.querySelectorAll("li.node.selected")) li.classList.remove("selected");
  for (const li of state.rows.get(id) || []) li.classList.add("selected");
  // Show it: open every ancestor.
  let opened = false;
  const seen = new Set();
  const walk = [...((model.nodes.get(id) || {}).parents || [])];
  while (walk.length) {
    const x = walk.pop();
    if (seen.has(x)) continue;
    seen.add(x);
    if (!isOpen(x)) {
      state.collapsed.delete(x);
      state.expanded.add(x);
      opened = true;
    }
    walk.push(...((model.nodes.get(x) || {}).parents || []));
  }
  if (opened) drawTree();
  state.onSelect(id);
}

export function selected() {
  return state.selected;
}

export function setFilter(f) {
  state.filter = f.trim().toLowerCase();
  drawTree();
}

function matches(n) {
  const f = state.filter;
  return n.id.toLowerCase().includes(f) || n.type.toLowerCase().includes(f) ||
    text(n, "description").toLowerCase().includes(f);
}

// With a filter: the matching nodes and every ancestor of one.
function visibleSet() {
  if (!state.filter) return null;
  const keep = new Set();
  for (const n of model.nodes.values()) {
    if (n.deleted || !matches(n)) continue;
    const walk = [n.id];
    while (walk.length) {
      const x = walk.pop();
      if (keep.has(x)) continue;
      keep.add(x);
      const m = model.nodes.get(x);
      if (m) walk.push(...m.parents);
    }
  }
  return keep;
}

let drawnShape = -1;

// True when nodes came, went or moved since the tree was drawn.
export function treeStale() {
  return drawnShape !== model.shape;
}

export function drawTree() {
  drawnShape = model.shape;
  state.rows.clear();
  const keep = visibleSet();
  const frag = document.createDocumentFragment();
  const root = model.nodes.get(model.root);
  if (root && (!keep || keep.has(root.id))) frag.append(row(root, keep, 0, new Set()));
  if (keep && keep.size === 0) {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = "No node matches \u201c" + state.filter + "\u201d.";
    frag.append(li);
  }
  state.el.replaceChildren(frag);
}

function row(n, keep, depth, path) {
  const li = document.createElement("li");
  li.className = "node";
  li.dataset.node = n.id;
  li.dataset.type = n.type;
  li.setAttribute("role", "treeitem");
  if (n.id === state.selected) li.classList.add("selected");
  const kids = children(n.id).filter((k) => !keep || keep.has(k.id));
  const open = isOpen(n.id) && kids.length > 0;
  const div = document.createElement("div");
  div.className = "row";
  div.tabIndex = 0;
  div.style.paddingLeft = 0.4 + depth * 1.1 + "em";
  const tog = document.createElement(kids.length ? "button" : "span");
  tog.className = kids.length ? "toggle" : "toggle none";
  if (kids.length) {
    tog.type = "button";
    tog.textContent = open ? "\u25be" : "\u25b8";
    tog.setAttribute("aria-label", open ? "collapse" : "expand");
    li.setAttribute("aria-expanded", String(open));
  }
  const type = document.createElement("span");
  type.className = "type t-" + n.type;
  type.textContent = n.type;
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = label(n);
  name.title = n.id;
  const badge = document.createElement("span");
  badge.className = "badge";
  div.append(tog, type, name, badge);
  li.append(div);
  paint(li, n);
  if (!state.rows.has(n.id)) state.rows.set(n.id, []);
  state.rows.get(n.id).push(li);
  if (open && !path.has(n.id)) {
    const ul = document.createElement("ul");
    ul.className = "children";
    ul.setAttribute("role", "group");
    path.add(n.id);
    for (const k of kids.slice(0, PAGE)) ul.append(row(k, keep, depth + 1, path));
    path.delete(n.id);
    if (kids.length > PAGE) {
      const more = document.createElement("li");
      more.className = "more";
      more.textContent = kids.length - PAGE + " more (search to narrow)";
      ul.append(more);
    }
    li.append(ul);
  }
  return li;
}

// The badge and state classes of a node's rows.
function paint(li, n) {
  const badge = li.querySelector(":scope > div.row > span.badge");
  let t = "";
  let cls = "badge";
  if (n.type === "sync") {
    t = text(n, "state") || "off";
    cls += " sync s-" + t;
  } else if (n.type === "rule") {
    if (text(n, "error")) {
      t = "error";
      cls += " error";
    } else if (point(n, "disabled") && point(n, "disabled").value) {
      t = "disabled";
    } else if (point(n, "active")) {
      t = point(n, "active").value ? "active" : "";
      if (t) cls += " on";
    }
  } else {
    const p = point(n, "value");
    if (p) {
      const ps = pointSchema(n.type, "value");
      t = formatPoint(p, ps) + (ps && ps.unit ? " " + ps.unit : "");
      const q = text(n, "quality");
      if (q && q !== "good") cls += " " + q;
    }
  }
  if (badge.textContent !== t) badge.textContent = t;
  if (badge.className !== cls) badge.className = cls;
  const name = li.querySelector(":scope > div.row > span.name");
  const nm = label(n);
  if (name.textContent !== nm) name.textContent = nm;
  const off = !!(point(n, "disabled") && point(n, "disabled").value);
  li.classList.toggle("disabled", off);
}

// Updates the rows of nodes whose points changed.
export function paintNodes(ids) {
  for (const id of ids) {
    const n = model.nodes.get(id);
    for (const li of state.rows.get(id) || []) if (n) paint(li, n);
  }
}
