// Inputs generated from the schema: a number field with its range and unit, a checkbox
// for a bool, a list for an enum, a text field for text. The range is shown, not
// enforced here: the server's check is the one that counts, and its refusal is shown
// next to the field word for word.

import { h } from "./dom.js";

// An input for point schema ps (undefined: a point the schema does not declare) holding
// point p. Returns {el, input, read()} where read() gives the JSON point fields
// ({value} or {text}) or throws an Error naming what is wrong.
export function fieldFor(name, ps, p) {
  const kind = ps ? ps.kind : p && p.text !== "" ? "text" : p ? "number" : "text";
  let input;
  if (kind === "bool") {
    input = h("input", { type: "checkbox", name, checked: !!(p ? p.value : ps && ps.default) });
  } else if (kind === "enum") {
    input = h("select", { name },
      (ps.values || []).map((v) => h("option", { value: v }, v)));
    input.value = p ? p.text : ps.default !== undefined ? String(ps.default) : ps.values[0];
  } else if (kind === "number" || kind === "integer") {
    input = h("input", {
      type: "number", name, step: kind === "integer" ? "1" : "any",
      min: ps && ps.min !== undefined ? ps.min : undefined,
      max: ps && ps.max !== undefined ? ps.max : undefined,
      value: p ? String(p.value) : ps && ps.default !== undefined ? String(ps.default) : "",
    });
  } else {
    input = h("input", {
      type: "text", name, spellcheck: false,
      value: p ? p.text : ps && ps.default !== undefined ? String(ps.default) : "",
    });
  }
  input.dataset.kind = kind;
  const hint = ps ? rangeHint(ps) : "";
  if (hint) input.title = hint;
  return {
    el: input,
    input,
    read() {
      if (kind === "bool") return { value: input.checked ? 1 : 0 };
      if (kind === "number" || kind === "integer") {
        const s = input.value.trim();
        // An out-of-range number still goes to the server, which says why it refuses.
        if (s === "" && input.validity && input.validity.badInput) {
          throw new Error(name + ": not a number");
        }
        if (s === "") throw new Error(name + ": enter a number");
        const v = Number(s);
        if (!Number.isFinite(v)) throw new Error(name + ": \u201c" + s + "\u201d is not a number");
        return { value: v };
      }
      return { text: input.value };
    },
    // Shows point p unless the user is changing the field.
    show(q) {
      if (document.activeElement === input || input.dataset.touched) return;
      if (kind === "bool") input.checked = !!(q && q.value);
      else if (kind === "number" || kind === "integer") input.value = q ? String(q.value) : "";
      else input.value = q ? q.text : "";
    },
  };
}

export function rangeHint(ps) {
  const parts = [];
  if (ps.kind === "integer" || ps.kind === "number") {
    if (ps.min !== undefined && ps.max !== undefined) parts.push(ps.min + " to " + ps.max);
    else if (ps.min !== undefined) parts.push("at least " + ps.min);
    else if (ps.max !== undefined) parts.push("at most " + ps.max);
    if (ps.kind === "integer") parts.push("whole number");
  }
  if (ps.unit) parts.push("unit " + ps.unit);
  return parts.join(", ");
}
