// The selected node on the right: its points (values with units and quality, editors
// generated from the schema), adding a child, moving and deleting it, and for a rule the
// editor (rule.js).

import { h } from "./dom.js";
import * as api from "./api.js";
import { fieldFor, rangeHint } from "./forms.js";
import { model, point, text, label, pointSchema, formatPoint, ago, childTypes, isAncestor } from "./model.js";
import { ruleEditor } from "./rule.js";
import { valueChart } from "./chart.js";

const cur = {
  el: null,
  id: "",
  rows: new Map(), // point key -> {tr, value, time, field}
  rule: null,      // the rule editor, for a rule
  chart: null,     // the value chart, for a node with a numeric value
  parents: "",     // the shown node's parents when drawn
  onSelect: () => {},
};

export function initDetail(el, onSelect) {
  cur.el = el;
  cur.onSelect = onSelect;
  setInterval(() => cur.id && refreshTimes(), 1000);
}

export function shownNode() {
  return cur.id;
}

// Draws node id from scratch.
export function showDetail(id) {
  cur.id = id;
  cur.rows.clear();
  cur.rule = null;
  cur.chart = null;
  const n = model.nodes.get(id);
  const el = cur.el;
  el.dataset.node = id;
  if (!n || n.deleted) {
    el.replaceChildren(h("h2#detail-title", {}, id), h("p.hint", {}, "This node was deleted."));
    return;
  }
  cur.parents = n.parents.join("\n");
  const t = model.types.get(n.type);
  const desc = text(n, "description");
  const head = h("div.head", {},
    h("h2#detail-title", {}, id),
    h("span#detail-type.type.t-" + n.type, { title: t ? t.description : "not declared by any schema" }, n.type),
    desc ? h("span.desc", {}, desc) : null);
  const parents = n.parents.length
    ? h("p.meta", {}, "In ", n.parents.map((p, i) => [i ? ", " : "", h("a", { href: "#" + p, onclick: (e) => { e.preventDefault(); cur.onSelect(p); } }, p)]))
    : h("p.meta", {}, "The root of this instance");
  const root = id === model.root;
  const actions = h("div.actions", {},
    childTypes(n.type).length ? h("button#add-child", { type: "button", onclick: () => addChildForm(n) }, "Add child") : null,
    root ? null : h("button#move-node", { type: "button", onclick: () => moveForm(n) }, "Move"),
    root ? null : h("button#delete-node.danger", { type: "button", onclick: () => deleteForm(n) }, "Delete"));
  const form = h("div#action-form");
  const parts = [head, parents, actions, form];
  if (n.type === "rule") {
    cur.rule = ruleEditor(n);
    parts.push(cur.rule.el);
  }
  const vp = point(n, "value");
  const vs = pointSchema(n.type, "value");
  if (vp && (vs ? vs.kind === "number" || vs.kind === "integer" : vp.text === "")) {
    cur.chart = valueChart(n, vs);
    parts.push(cur.chart.el);
  }
  parts.push(pointsTable(n));
  el.replaceChildren(...parts);
}

// The schema's points, then any the schema does not declare (open types).
function pointsTable(n) {
  const t = model.types.get(n.type);
  const tbody = h("tbody");
  const done = new Set();
  const skip = n.type === "rule" ? new Set(["script"]) : new Set();
  // What the node reports (driver-owned: value, state, quality) first, then its settings.
  const order = (t ? t.points : []).slice().sort((a, b) =>
    (a.owner === "driver" ? 0 : 1) - (b.owner === "driver" ? 0 : 1) || a.name.localeCompare(b.name));
  for (const ps of order) {
    if (skip.has(ps.name)) continue;
    const keys = [];
    for (const p of n.points.values()) if (p.type === ps.name && !p.tombstone) keys.push(p.key);
    if (keys.length === 0) keys.push("0");
    for (const k of keys.sort()) {
      done.add(ps.name + "\u0000" + k);
      tbody.append(pointRow(n, ps.name, k, ps));
    }
  }
  const extra = [...n.points.values()].filter((p) => !p.tombstone && !done.has(p.type + "\u0000" + p.key) && !skip.has(p.type));
  extra.sort((a, b) => a.type.localeCompare(b.type) || a.key.localeCompare(b.key));
  for (const p of extra) tbody.append(pointRow(n, p.type, p.key, undefined));
  const table = h("table#points", {},
    h("thead", {}, h("tr", {}, h("th", {}, "Point"), h("th", {}, "Value"), h("th", {}, "Updated"), h("th", {}, "Set"))),
    tbody);
  const wrap = h("div.points", {}, table);
  if (!t || t.open) wrap.append(addPointForm(n));
  return wrap;
}

function pointRow(n, type, key, ps) {
  const p = point(n, type, key);
  const name = key === "0" || (ps && ps.keys === "one") ? type : type + "[" + key + "]";
  const value = h("td.value");
  const time = h("td.time");
  const tr = h("tr.point", { dataset: { point: type, key } },
    h("th", { title: ps ? (ps.description || "") + (rangeHint(ps) ? " (" + rangeHint(ps) + ")" : "") : "not in the schema" }, name,
      ps && ps.owner === "driver" ? h("span.owner", { title: "written by the node's driver or rule" }, " \u2699") : null),
    value, time);
  const row = { tr, value, time, field: null, ps, type, key };
  if (!ps || ps.owner !== "driver") {
    const field = fieldFor(type, ps, p);
    const msg = h("span.msg", { "aria-live": "polite" });
    const save = h("button.save", { type: "button" }, "Set");
    const go = () => writePoint(n.id, type, key, field, msg);
    save.addEventListener("click", go);
    field.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        go();
      }
    });
    field.input.addEventListener("input", () => {
      field.input.dataset.touched = "1";
      msg.textContent = "";
      msg.className = "msg";
    });
    row.field = field;
    tr.append(h("td.edit", {}, h("div.editor", {}, field.el, ps && ps.unit ? h("span.unit", {}, ps.unit) : null, save, msg)));
  } else {
    tr.append(h("td.edit"));
  }
  cur.rows.set(type + "\u0000" + key, row);
  paintRow(n, row);
  return tr;
}

function paintRow(n, row) {
  const p = point(n, row.type, row.key);
  const ps = row.ps;
  const v = formatPoint(p, ps);
  const unit = ps && ps.unit && p && ps.unit !== "ns" ? ps.unit : "";
  const shown = v + "\u0000" + unit;
  if (row.value.dataset.shown !== shown) {
    row.value.dataset.shown = shown;
    row.value.replaceChildren(v === "" ? h("span.none", {}, "\u2014") : v, unit ? h("span.unit", {}, " " + unit) : "");
  }
  if (row.type === "value" || row.type === "valueSet") {
    const q = text(n, "quality");
    if (q) row.value.dataset.quality = q;
    else delete row.value.dataset.quality;
  }
  row.time.textContent = p ? ago(p.time) : "";
  row.time.title = p ? p.time + (p.origin ? " by " + p.origin : "") : "";
  if (row.field) row.field.show(p);
}

async function writePoint(id, type, key, field, msg) {
  let fields;
  msg.className = "msg";
  msg.textContent = "";
  try {
    fields = field.read();
  } catch (e) {
    msg.className = "msg error";
    msg.textContent = e.message;
    return;
  }
  msg.textContent = "saving\u2026";
  try {
    await api.post("/v1/nodes/" + api.enc(id) + "/points", [Object.assign({ type, key }, fields)]);
    delete field.input.dataset.touched;
    msg.className = "msg ok";
    msg.textContent = "saved";
  } catch (e) {
    msg.className = "msg error";
    msg.textContent = e.message;
  }
}

// Called after events: updates the shown node's values, or draws it again when its
// shape changed (a point appeared, the node went).
export function refreshDetail(dirty) {
  if (!cur.id) return;
  const n = model.nodes.get(cur.id);
  if (!n || n.deleted) {
    if (dirty.has(cur.id) || !n) showDetail(cur.id);
    return;
  }
  if (!dirty.has(cur.id)) return;
  if (n.parents.join("\n") !== cur.parents) {
    showDetail(cur.id); // moved: its place and what may be done with it changed
    return;
  }
  for (const p of n.points.values()) {
    if (!p.tombstone && !cur.rows.has(p.type + "\u0000" + p.key) && !(n.type === "rule" && p.type === "script")) {
      // A new point: draw again, keeping what is being typed.
      if (!cur.el.contains(document.activeElement) || document.activeElement === document.body) {
        showDetail(cur.id);
        return;
      }
    }
  }
  for (const row of cur.rows.values()) paintRow(n, row);
  if (cur.rule) cur.rule.refresh(n);
  if (cur.chart) cur.chart.refresh(n);
}

function refreshTimes() {
  const n = model.nodes.get(cur.id);
  if (!n) return;
  for (const row of cur.rows.values()) {
    const p = point(n, row.type, row.key);
    row.time.textContent = p ? ago(p.time) : "";
  }
  if (cur.rule) cur.rule.refresh(n);
  if (cur.chart) cur.chart.refresh(n);
}

// --- node actions ------------------------------------------------------------------------

function formArea(title, ...body) {
  const area = cur.el.querySelector("#action-form");
  const msg = h("p#action-msg.msg", { role: "alert" });
  const close = h("button.close", { type: "button", "aria-label": "close", onclick: () => area.replaceChildren() }, "\u00d7");
  area.replaceChildren(h("div.card", {}, h("h3", {}, title, close), ...body, msg));
  return msg;
}

function fail(msg, e) {
  msg.className = "msg error";
  msg.textContent = e.message;
}

function addChildForm(n) {
  const types = childTypes(n.type);
  const sel = h("select#new-type", {}, types.map((t) => h("option", { value: t }, t)));
  const id = h("input#new-id", { type: "text", placeholder: "generated when empty", spellcheck: false });
  const fields = h("div.fields");
  let current = [];
  const fill = () => {
    const t = model.types.get(sel.value);
    current = [];
    fields.replaceChildren();
    for (const ps of t ? t.points : []) {
      if (ps.owner === "driver" || ps.local) continue;
      if (!ps.required && ps.name !== "description") continue;
      const f = fieldFor(ps.name, ps, undefined);
      current.push({ ps, f });
      fields.append(h("label", {}, h("span", {}, ps.name + (ps.required ? " *" : "")), f.el, ps.unit ? h("span.unit", {}, ps.unit) : null));
    }
  };
  sel.addEventListener("change", fill);
  const prefer = ["group", "signalGenerator", "rule"].find((t) => types.includes(t));
  if (prefer) sel.value = prefer;
  fill();
  const create = h("button#create-node", { type: "button" }, "Create");
  const msg = formArea("New node under " + n.id,
    h("label", {}, h("span", {}, "type"), sel), h("label", {}, h("span", {}, "id"), id), fields, create);
  create.addEventListener("click", async () => {
    const points = [];
    try {
      for (const { ps, f } of current) {
        const v = f.read();
        if (v.text === "" && ps.required) throw new Error(ps.name + " is required for a " + sel.value);
        if (v.text === "") continue;
        points.push(Object.assign({ type: ps.name }, v));
      }
      const body = { type: sel.value, parent: n.id, points };
      if (id.value.trim()) body.id = id.value.trim();
      const r = await api.post("/v1/nodes", body);
      cur.el.querySelector("#action-form").replaceChildren();
      cur.onSelect(r.id, true);
    } catch (e) {
      fail(msg, e);
    }
  });
}

function moveForm(n) {
  const t = model.types.get(n.type);
  const ok = [...model.nodes.values()].filter((m) => !m.deleted && m.id !== n.id &&
    !n.parents.includes(m.id) && !isAncestor(n.id, m.id) &&
    (!t || !t.parents || t.parents.includes(m.type)));
  ok.sort((a, b) => a.id.localeCompare(b.id));
  const from = h("select#move-from", {}, n.parents.map((p) => h("option", { value: p }, p)));
  const to = h("select#move-parent", {}, ok.map((m) => h("option", { value: m.id }, label(m) === m.id ? m.id : m.id + " (" + label(m) + ")")));
  const go = h("button#move-submit", { type: "button", disabled: ok.length === 0 }, "Move");
  const msg = formArea("Move " + n.id,
    n.parents.length > 1 ? h("label", {}, h("span", {}, "from"), from) : null,
    h("label", {}, h("span", {}, "to"), ok.length ? to : h("span.none", {}, "no node may hold a " + n.type)), go);
  go.addEventListener("click", async () => {
    try {
      await api.post("/v1/nodes/" + api.enc(n.id) + "/parents", { op: "move", from: n.parents.length > 1 ? from.value : n.parents[0], to: to.value });
      cur.el.querySelector("#action-form").replaceChildren();
    } catch (e) {
      fail(msg, e);
    }
  });
}

function deleteForm(n) {
  const go = h("button#delete-confirm.danger", { type: "button" }, "Delete " + n.id);
  let parent = n.parents[0];
  const msg = formArea("Delete " + n.id,
    h("p", {}, "Deletes it from " + parent + ", with everything below it. Its history stays in the store."), go);
  go.addEventListener("click", async () => {
    const now = model.nodes.get(n.id);
    const from = now && now.parents.length ? now.parents[0] : parent;
    try {
      await api.del("/v1/nodes/" + api.enc(n.id) + "?parent=" + api.enc(from));
      parent = from;
      cur.onSelect(parent, true);
    } catch (e) {
      fail(msg, e);
    }
  });
}

function addPointForm(n) {
  const type = h("input#new-point-type", { type: "text", placeholder: "point type", spellcheck: false });
  const key = h("input#new-point-key", { type: "text", placeholder: "key", spellcheck: false, size: 6 });
  const val = h("input#new-point-value", { type: "text", placeholder: "value (number or text)", spellcheck: false });
  const msg = h("span.msg");
  const go = h("button#new-point-save", { type: "button" }, "Add point");
  go.addEventListener("click", async () => {
    const s = val.value.trim();
    const ps = pointSchema(n.type, type.value.trim());
    const numeric = ps ? ps.kind !== "text" && ps.kind !== "enum" : s !== "" && Number.isFinite(Number(s));
    const pt = { type: type.value.trim(), key: key.value.trim() || "0" };
    if (ps && ps.kind === "bool" && (s === "true" || s === "false")) pt.value = s === "true" ? 1 : 0;
    else if (numeric) pt.value = Number(s);
    else pt.text = val.value;
    if (numeric && (s === "" || !Number.isFinite(pt.value))) {
      msg.className = "msg error";
      msg.textContent = pt.type + ": \u201c" + s + "\u201d is not a number (" + ps.kind + ")";
      return;
    }
    try {
      await api.post("/v1/nodes/" + api.enc(n.id) + "/points", [pt]);
      msg.className = "msg ok";
      msg.textContent = "added";
      type.value = key.value = val.value = "";
    } catch (e) {
      msg.className = "msg error";
      msg.textContent = e.message;
    }
  });
  return h("div.add-point", {}, type, key, val, go, msg);
}
