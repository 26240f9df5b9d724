// sprig's web UI: the live tree of this gateway. Loads the schema and the nodes, then
// follows /v1/events; changes are applied to the page's copy at once and drawn at most
// ten times a second. A token is asked for when the daemon wants one.

import * as api from "./api.js";
import { h } from "./dom.js";
import { model, setSchema, setNodes, putNode, dropNode, applyEvent, label, text } from "./model.js";
import { initTree, drawTree, treeStale, paintNodes, select, selected, setFilter } from "./tree.js";
import { initDetail, showDetail, refreshDetail, shownNode } from "./detail.js";
import { noteEvent } from "./activity.js";

const $ = (sel) => document.querySelector(sel);
const DRAW_EVERY = 100; // ms
const STATUS_EVERY = 5000; // ms: how often the header asks whether the database can be written

let stopEvents = null;
let buffered = null;  // events that arrived before the snapshot
let drawTimer = 0;
let retry = 1000;
let retryTimer = 0; // the one pending reconnect: never two loops at once
let statusTimer = 0;
const fetching = new Set();

function again(ms) {
  clearTimeout(retryTimer);
  retryTimer = setTimeout(start, ms);
}

function banner(msg) {
  const b = $("#banner");
  b.textContent = msg || "";
  b.hidden = !msg;
}

function setLive(on) {
  const l = $("#live");
  l.textContent = on ? "live" : "offline";
  l.className = on ? "live" : "offline";
}

// --- login -------------------------------------------------------------------------------

function askToken(msg) {
  stop();
  $("#app").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = msg || "";
  $("#token").focus();
}

async function login(e) {
  e.preventDefault();
  const t = $("#token").value.trim();
  if (!t) {
    $("#login-error").textContent = "Enter the token.";
    return;
  }
  api.setToken(t);
  $("#login-error").textContent = "";
  try {
    await api.get("/v1/status");
  } catch (err) {
    api.setToken("");
    $("#login-error").textContent = err.status === 401 ? "The gateway refused this token: " + err.message : err.message;
    return;
  }
  $("#token").value = "";
  $("#login").hidden = true;
  start();
}

// --- loading and the stream --------------------------------------------------------------

function stop() {
  if (stopEvents) stopEvents();
  stopEvents = null;
  clearTimeout(statusTimer);
  setLive(false);
}

// The header's store badge, from /v1/status: shown while the daemon cannot write its
// database (its writes are then refused), with the daemon's sentence on hover.
function drawStore(status) {
  const s = (status && status.store) || {};
  const el = $("#store");
  const bad = !!s.state && s.state !== "ok";
  el.hidden = !bad;
  el.dataset.state = s.state || "ok";
  el.textContent = bad ? "\u26a0 database " + s.state : "";
  el.title = bad ? s.error + " (since " + s.since + "); changes are refused until it can be written again" : "";
}

// Asks again every STATUS_EVERY while the page is live (one timer at most).
function pollLater() {
  clearTimeout(statusTimer);
  if (stopEvents) statusTimer = setTimeout(pollStatus, STATUS_EVERY);
}

async function pollStatus() {
  try {
    drawStore(await api.get("/v1/status"));
  } catch (e) {
    // The live stream's state says when the gateway is gone.
  }
  pollLater();
}

async function start() {
  clearTimeout(retryTimer);
  stop();
  buffered = [];
  // The stream first, so that nothing between the snapshot and it is missed.
  stopEvents = api.events(() => { setLive(true); retry = 1000; }, onEvent, onClosed);
  try {
    const [status, schema, nodes] = await Promise.all([
      api.get("/v1/status"), api.get("/v1/schema"), api.get("/v1/nodes")]);
    setSchema(schema);
    setNodes(nodes, status.root);
    const pending = buffered;
    buffered = null;
    for (const ev of pending) onEvent(ev);
    $("#login").hidden = true;
    $("#app").hidden = false;
    $("#logout").hidden = !api.token();
    banner("");
    const root = model.nodes.get(status.root);
    $("#device").textContent = root ? label(root) : status.root;
    $("#device").title = "root node " + status.root + ", sprig " + status.version;
    drawStore(status);
    pollLater();
    drawTree();
    drawSync();
    const want = decodeURIComponent(location.hash.slice(1)) || selected() || status.root;
    select(model.nodes.has(want) ? want : status.root);
  } catch (e) {
    buffered = null;
    stop();
    if (e.status === 401) askToken(api.token() ? "The token is no longer accepted: " + e.message : "");
    else {
      banner("Cannot load the tree: " + e.message + " (trying again in " + retry / 1000 + " s)");
      again(retry);
      retry = Math.min(retry * 2, 10000);
    }
  }
}

function onEvent(ev) {
  if (buffered) {
    buffered.push(ev);
    return;
  }
  noteEvent(ev);
  if (!applyEvent(ev)) fetchNode(ev.node);
  if (!drawTimer) drawTimer = setTimeout(draw, DRAW_EVERY);
}

function onClosed(err) {
  setLive(false);
  stopEvents = null;
  if (err && err.status === 401) {
    askToken("The token is no longer accepted: " + err.message);
    return;
  }
  // Reconnect, then load the tree again: changes made while away are in the snapshot.
  banner("Lost the live stream" + (err ? " (" + err.message + ")" : "") + "; reconnecting\u2026");
  again(retry);
  retry = Math.min(retry * 2, 10000);
}

// A node came, or its parents changed: ask for it (once per burst).
function fetchNode(id) {
  if (fetching.has(id)) return;
  fetching.add(id);
  setTimeout(async () => {
    fetching.delete(id);
    try {
      putNode(await api.get("/v1/nodes/" + api.enc(id)));
    } catch (e) {
      if (e.status === 404) dropNode(id);
    }
    if (!drawTimer) drawTimer = setTimeout(draw, 0);
  }, 30);
}

function draw() {
  drawTimer = 0;
  const dirty = new Set(model.dirty);
  model.dirty.clear();
  const reshaped = treeStale();
  if (reshaped) drawTree();
  else paintNodes(dirty);
  refreshDetail(dirty);
  let sync = reshaped;
  for (const id of dirty) {
    const n = model.nodes.get(id);
    if (n && n.type === "sync") sync = true;
  }
  if (sync || dirty.size === 0) drawSync();
}

// The header's summary: every sync node and its state.
function drawSync() {
  const out = [];
  for (const n of model.nodes.values()) {
    if (n.type !== "sync" || n.deleted) continue;
    const st = text(n, "state") || "off";
    const err = text(n, "error");
    out.push(h("span.sync.s-" + st, {
      dataset: { node: n.id, state: st },
      title: "sync " + n.id + ": " + st + (err ? " \u2014 " + err : ""),
      onclick: () => select(n.id),
    }, "\u21c5 " + label(n) + ": " + st));
  }
  $("#sync-summary").replaceChildren(...out);
}

// --- wiring ------------------------------------------------------------------------------

function onSelect(id, fresh) {
  if (fresh) {
    // Just created (or the parent of a deleted node): show it once it is here.
    if (model.nodes.has(id)) select(id);
    else api.get("/v1/nodes/" + api.enc(id)).then((j) => { putNode(j); draw(); select(id); }, () => {});
    return;
  }
  if (location.hash.slice(1) !== id) history.replaceState(null, "", "#" + encodeURIComponent(id));
  if (shownNode() !== id || fresh) showDetail(id);
}

initTree($("#tree"), onSelect);
initDetail($("#detail"), (id, fresh) => (fresh ? onSelect(id, true) : select(id)));
$("#login").addEventListener("submit", login);
$("#logout").addEventListener("click", () => {
  api.setToken("");
  askToken("");
});
let searchTimer = 0;
$("#search").addEventListener("input", (e) => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => setFilter(e.target.value), 120);
});
window.addEventListener("hashchange", () => {
  const id = decodeURIComponent(location.hash.slice(1));
  if (id && model.nodes.has(id) && id !== selected()) select(id);
});
start();
