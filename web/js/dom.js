// DOM helpers. Every text from the server goes in as a text node (never innerHTML), so a
// hostile package name, PKGBUILD or log line cannot inject markup.

/** `h("td", {class: "num"}, "12")`: an element with attributes and children (strings,
 *  numbers, nodes, arrays; null/false skipped). `on*` attributes that are functions become
 *  event listeners; `dataset` sets data-*; boolean true sets an empty attribute. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(el.dataset, v);
      else if (k === "class") el.className = v;
      else if (k === "value" || k === "checked" || k === "disabled" || k === "selected") el[k] = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replace every child of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export const $ = (id) => document.getElementById(id);

/** A small status tag: kind is ok | warn | bad | info | mute. */
export const tag = (kind, text, title) => h("span", { class: `tag ${kind}`, title }, text);

// ---- toasts ----

/** Show a message bottom-right. Errors stay until dismissed; others go after 6 s. */
export function toast(text, { error = false } = {}) {
  const box = $("toasts");
  const close = h("button", { type: "button", "aria-label": "Dismiss" }, "×");
  const t = h("div", { class: "toast" + (error ? " bad" : ""), role: error ? "alert" : "status" },
    h("span", { class: "msg" }, text), close);
  close.addEventListener("click", () => t.remove());
  box.append(t);
  if (!error) setTimeout(() => t.remove(), 6000);
  while (box.children.length > 5) box.firstElementChild.remove();
  return t;
}

// ---- confirm dialog ----

/** Ask before a change. `body` is a node or text; resolves true on OK. */
export function confirmAction({ title, body, ok = "OK", danger = false }) {
  const dlg = $("confirm");
  replace($("confirm-title"), title);
  replace($("confirm-body"), body);
  const okBtn = $("confirm-ok");
  okBtn.textContent = ok;
  okBtn.className = "btn primary" + (danger ? " danger" : "");
  return new Promise((resolve) => {
    const done = (v) => {
      okBtn.removeEventListener("click", onOk);
      $("confirm-cancel").removeEventListener("click", onCancel);
      dlg.removeEventListener("close", onClose);
      if (dlg.open) dlg.close();
      resolve(v);
    };
    const onOk = (e) => { e.preventDefault(); done(true); };
    const onCancel = () => done(false);
    const onClose = () => done(false);
    okBtn.addEventListener("click", onOk);
    $("confirm-cancel").addEventListener("click", onCancel);
    dlg.addEventListener("close", onClose);
    dlg.showModal();
    (danger ? $("confirm-cancel") : okBtn).focus();
  });
}

/** A button that runs `action` once at a time (disabled while it runs). */
export function actionButton(label, action, { cls = "btn small", title, busy = "…" } = {}) {
  const b = h("button", { type: "button", class: cls, title }, label);
  b.addEventListener("click", async () => {
    if (b.disabled) return;
    b.disabled = true;
    const old = b.textContent;
    b.textContent = busy === "…" ? old + "…" : busy;
    try { await action(b); } finally {
      if (b.isConnected) { b.disabled = false; b.textContent = old; }
    }
  });
  return b;
}

/** A card section: `card("Title", [extra head nodes], ...body)`. */
export function card(title, headExtra, ...body) {
  return h("section", { class: "card", "aria-label": title },
    h("div", { class: "card-head" }, h("h2", null, title), headExtra ?? []), body);
}
