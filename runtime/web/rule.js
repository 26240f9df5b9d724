// The rule editor: the script with line numbers, a compile check while typing (the
// server compiles it, so the message is the one the engine would give), save, and what
// the rule did: its error, its runs, and the writes it made lately.

import { h } from "./dom.js";
import * as api from "./api.js";
import { point, text, ago } from "./model.js";
import { activityOf } from "./activity.js";

const CHECK_DELAY = 300; // ms after typing stops

export function ruleEditor(n) {
  const id = n.id;
  const chunk = () => text(n, "file") || id; // the engine names a rule's chunk so
  let saved = text(n, "script");
  const gutter = h("pre.gutter", { "aria-hidden": "true" });
  const area = h("textarea#script", { spellcheck: false, wrap: "off", autocapitalize: "off", "aria-label": "Lua script of rule " + id });
  area.value = saved;
  const check = h("span#rule-check", { "aria-live": "polite" });
  const saveMsg = h("span#rule-save-msg.msg", { "aria-live": "polite" });
  const save = h("button#rule-save", { type: "button", title: "Save (Ctrl+S)" }, "Save");
  const revert = h("button#rule-revert", { type: "button", disabled: true }, "Revert");
  const notice = h("p#rule-notice.notice", { hidden: true });
  const err = h("dd#rule-error");
  const runs = h("dd#rule-runs");
  const last = h("dd#rule-last-run");
  const activity = h("ul#rule-activity");
  const file = text(n, "file");
  const el = h("div#rule-editor", {},
    h("div.rule-head", {}, h("h3", {}, "Script"),
      file ? h("span.file", { title: "sprig run --rules watches this file: a change of the file replaces what is saved here" }, "from " + file) : null),
    notice,
    h("div.code", {}, gutter, area),
    h("div.rule-bar", {}, save, revert, check, saveMsg),
    h("dl.rule-status", {}, h("dt", {}, "Error"), err, h("dt", {}, "Runs"), runs, h("dt", {}, "Last run"), last),
    h("h3", {}, "Recent writes by this rule"), activity);

  let errLine = 0;
  let timer = 0;
  let seq = 0;

  const lines = () => {
    const count = area.value.split("\n").length;
    const out = [];
    for (let i = 1; i <= count; i++) out.push(i === errLine ? "\u25b6" + i : String(i));
    gutter.textContent = out.join("\n") + "\n";
    gutter.scrollTop = area.scrollTop;
  };
  const modified = () => area.value !== saved;
  const setState = () => {
    revert.disabled = !modified();
    el.classList.toggle("modified", modified());
  };

  async function compile() {
    const mine = ++seq;
    try {
      const r = await api.post("/v1/rules/compile", { script: area.value, name: chunk() });
      if (mine !== seq) return;
      if (r.ok) {
        check.className = "ok";
        check.textContent = "compiles";
        delete check.dataset.line;
        errLine = 0;
      } else {
        check.className = "error";
        check.textContent = r.error;
        check.dataset.line = String(r.line);
        errLine = r.line;
      }
    } catch (e) {
      if (mine !== seq) return;
      check.className = "error";
      check.textContent = "cannot check: " + e.message;
      errLine = 0;
    }
    lines();
  }

  async function doSave() {
    clearTimeout(timer);
    saveMsg.className = "msg";
    saveMsg.textContent = "saving\u2026";
    const script = area.value;
    try {
      await api.post("/v1/nodes/" + api.enc(id) + "/points", [{ type: "script", text: script }]);
      saved = script;
      notice.hidden = true;
      saveMsg.className = "msg ok";
      saveMsg.textContent = "saved " + new Date().toLocaleTimeString();
    } catch (e) {
      saveMsg.className = "msg error";
      saveMsg.textContent = e.message;
    }
    setState();
    compile();
  }

  area.addEventListener("input", () => {
    lines();
    setState();
    saveMsg.textContent = "";
    check.className = "pending";
    check.textContent = "checking\u2026";
    clearTimeout(timer);
    timer = setTimeout(compile, CHECK_DELAY);
  });
  area.addEventListener("scroll", () => { gutter.scrollTop = area.scrollTop; });
  area.addEventListener("keydown", (e) => {
    if (e.key === "Tab" && !e.shiftKey && !e.ctrlKey && !e.altKey) {
      e.preventDefault();
      const s = area.selectionStart;
      area.setRangeText("  ", s, area.selectionEnd, "end");
      area.dispatchEvent(new Event("input"));
    } else if ((e.ctrlKey || e.metaKey) && e.key === "s") {
      e.preventDefault();
      doSave();
    }
  });
  save.addEventListener("click", doSave);
  revert.addEventListener("click", () => {
    area.value = saved;
    notice.hidden = true;
    area.dispatchEvent(new Event("input"));
  });

  function refresh(m) {
    n = m;
    const s = text(m, "script");
    if (s !== saved) {
      // Changed on the gateway (its file, another browser, the CLI).
      if (!modified()) {
        saved = s;
        area.value = s;
        lines();
        compile();
      } else {
        saved = s;
        notice.hidden = false;
        notice.textContent = "The script was changed on the gateway while you edited it: Save keeps yours, Revert loads that one.";
      }
      setState();
    }
    const e = text(m, "error");
    if (err.textContent !== e) err.textContent = e;
    err.className = e ? "error" : "";
    const r = point(m, "runs");
    const rs = r ? String(Math.round(r.value)) : "0";
    if (runs.textContent !== rs) runs.textContent = rs;
    const lr = point(m, "lastRun");
    const lt = lr && lr.value > 0 ? new Date(lr.value / 1e6) : null;
    last.textContent = lt ? lt.toLocaleTimeString() + " (" + ago(lt.toISOString()) + ")" : "never";
    const acts = activityOf(id);
    if (activity.dataset.count !== String(acts.total)) {
      activity.dataset.count = String(acts.total);
      activity.replaceChildren(...(acts.items.length
        ? acts.items.map((a) => h("li", {}, h("time", {}, new Date(a.time).toLocaleTimeString()), " ", a.node, ".", a.type, a.key !== "0" ? "[" + a.key + "]" : "", " = ", a.value))
        : [h("li.none", {}, "none since this page was opened")]));
    }
  }

  lines();
  refresh(n);
  compile();
  return { el, refresh };
}
