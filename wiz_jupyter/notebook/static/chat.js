// wiz_jupyter chat panel. Markdown is rendered by marked (raw HTML shown as text), code
// highlighted by highlight.js, and the result sanitized by DOMPurify before it is shown.
//
// The three libraries are vendored in static/vendor/ as ES modules. anywidget loads this
// module from a string, where relative imports cannot resolve, so chat_panel.py puts their
// sources ahead of this file as WIZ_VENDOR and they are imported from in-memory URLs.

function escapeHtml(s) {
  return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

// A link may go to http(s), mailto, or a relative place; javascript:, data: and every other
// scheme are dropped (DOMPurify tests the attribute as the browser decoded it).
export const SAFE_URI = /^(?:(?:https?|mailto):|[^a-z]|[a-z+.\-]+(?:[^a-z+.\-:]|$))/i;
const TAGS = [
  "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
  "input", "li", "ol", "p", "pre", "span", "strong", "table", "tbody", "td", "th", "thead",
  "tr", "ul",
];
const ATTRS = ["href", "title", "class", "start", "align", "type", "checked", "disabled"];

function importSource(source) {
  // in a page, a blob URL (as anywidget loads this module); in node (the unit tests), data:
  const url = typeof document !== "undefined"
    ? URL.createObjectURL(new Blob([source], { type: "text/javascript" }))
    : `data:text/javascript;charset=utf-8,${encodeURIComponent(source)}`;
  return import(url);
}

let libraries = null;

/** marked, DOMPurify and highlight.js (with Python), imported once per page. */
export function loadLibraries() {
  if (!libraries) {
    const sources = typeof WIZ_VENDOR === "undefined" ? null : WIZ_VENDOR; // eslint-disable-line no-undef
    if (!sources) throw new Error("chat.js is loaded without its vendored libraries");
    libraries = Promise.all(["marked", "dompurify", "highlight", "python"].map((k) => importSource(sources[k])))
      .then(([marked, purify, hljs, python]) => {
        hljs.default.registerLanguage("python", python.default);
        return { Marked: marked.Marked, DOMPurify: purify.default, hljs: hljs.default };
      });
  }
  return libraries;
}

/** markdown -> HTML (not yet sanitized): GFM tables, lists and fences; raw HTML as text. */
export function markdownToHtml({ Marked, hljs }) {
  const md = new Marked({ gfm: true, breaks: false, async: false });
  md.use({
    renderer: {
      // raw HTML is shown as the text it is (a block of it keeps its lines)
      html: ({ text, block }) => (block ? `<p class="wiz-raw">${escapeHtml(text.replace(/\n+$/, ""))}</p>\n` : escapeHtml(text)),
      // an image in model text could carry data out in its URL the moment it loads
      image: ({ href, text }) => `<a href="${escapeHtml(href)}">[image: ${escapeHtml(text || href)}]</a>`,
      code: ({ text, lang }) => {
        const name = String(lang || "").trim().split(/\s+/)[0].toLowerCase();
        const known = name && hljs.getLanguage(name);
        const body = known ? hljs.highlight(text, { language: name, ignoreIllegals: true }).value : escapeHtml(text);
        const cls = name ? ` class="hljs language-${escapeHtml(name)}"` : "";
        return `<pre><code${cls}>${body}</code></pre>\n`;
      },
    },
  });
  return (text) => md.parse(String(text ?? ""));
}

/** HTML -> HTML that runs nothing: DOMPurify with a short list of tags and safe links. */
export function sanitizer(DOMPurify, win) {
  const purify = DOMPurify(win);
  purify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A" && node.hasAttribute("href")) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
  });
  const config = { ALLOWED_TAGS: TAGS, ALLOWED_ATTR: ATTRS, ALLOWED_URI_REGEXP: SAFE_URI };
  return (html) => purify.sanitize(html, config);
}

/** text -> safe HTML, for a page (needs a window for DOMPurify). */
export async function markdownRenderer() {
  const libs = await loadLibraries();
  const toHtml = markdownToHtml(libs);
  const clean = sanitizer(libs.DOMPurify, window);
  return (text) => clean(toHtml(text));
}

// -- code blocks: Copy everywhere; Insert below / Replace active cell where the JupyterLab
// extension listens (it marks <body data-wiz-code-actions>); the panel only sends an event.

/** The text of a rendered code block, without the fence's last newline. */
export function codeOf(pre) {
  return (pre.textContent || "").replace(/\n$/, "");
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // no clipboard API (plain http, a denied permission): the old way
    const area = document.createElement("textarea");
    area.value = text;
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.append(area);
    area.select();
    let ok = false;
    try { ok = document.execCommand("copy"); } catch { ok = false; }
    area.remove();
    return ok;
  }
}

function actionButton(label, cls, onClick) {
  const b = el("button", `wiz-code-btn ${cls}`, label);
  b.type = "button";
  // the notebook makes the cell under a mousedown (or a focus) active: keep the active cell
  b.addEventListener("mousedown", (e) => { e.preventDefault(); e.stopPropagation(); });
  b.addEventListener("click", (e) => { e.preventDefault(); e.stopPropagation(); onClick(b); });
  return b;
}

function codeActions(body) {
  const lab = document.body?.dataset.wizCodeActions === "1";
  for (const pre of body.querySelectorAll("pre")) {
    const bar = el("div", "wiz-code-actions");
    const send = (action) => pre.dispatchEvent(new CustomEvent("wiz:code", {
      bubbles: true, composed: true, detail: { action, code: codeOf(pre) },
    }));
    if (lab) {
      bar.append(
        actionButton("Insert below", "wiz-code-insert", () => send("insert")),
        actionButton("Replace active cell", "wiz-code-replace", () => send("replace")),
      );
    }
    bar.append(actionButton("Copy", "wiz-code-copy", async (b) => {
      b.textContent = (await copyText(codeOf(pre))) ? "Copied" : "Copy failed";
      setTimeout(() => { b.textContent = "Copy"; }, 1500);
    }));
    pre.after(bar);
  }
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = String(text);
  return e;
}

// -- a reply job waiting for a person: Approve / Deny with the tool's name and arguments,
// or a reply box for a question. Everything the model wrote is set as text, never HTML.

function argsText(args) {
  if (args === undefined || args === null) return "";
  try { return JSON.stringify(args, null, 2); } catch { return String(args); }
}

/** The controls of an input note (`asks` from the kernel); `invoke` sends a reply. */
export function askControls(jobId, asks, invoke) {
  const box = el("div", "wiz-ask");
  box.dataset.job = String(jobId);
  box.dataset.kind = asks.kind || "";
  if (asks.kind === "question") {
    box.append(el("div", "wiz-ask-question", asks.question || ""));
  } else if (asks.kind === "approval") {
    const call = el("div", "wiz-ask-call");
    call.append(el("span", "wiz-ask-label", "approve "), el("code", "wiz-ask-tool", asks.tool || "?"));
    box.append(call, el("pre", "wiz-ask-args", argsText(asks.args)));
  }
  const status = el("div", "wiz-ask-status", "");
  const done = (text) => {
    box.classList.add("wiz-ask-done");
    for (const c of box.querySelectorAll("button, input, textarea")) c.disabled = true;
    status.textContent = text;
  };
  box.wizDone = done;
  if (!asks.live) {
    box.append(status);
    done(asks.reply || "replied");
    return box;
  }
  const error = el("div", "wiz-ask-error", "");
  const send = async (request) => {
    error.textContent = "";
    for (const c of box.querySelectorAll("button")) c.disabled = true;
    try {
      const answer = await invoke({ ...request, id: jobId });
      if (answer && answer.error) throw new Error(answer.error);
      done((answer && answer.reply) || `${request.action}d`);
    } catch (e) {
      error.textContent = e && e.message ? e.message : String(e);
      if (!box.classList.contains("wiz-ask-done")) for (const c of box.querySelectorAll("button")) c.disabled = false;
    }
  };
  const row = el("div", "wiz-ask-row");
  if (asks.kind === "question") {
    const text = el("textarea", "wiz-ask-answer");
    text.rows = 2;
    text.placeholder = "Your answer (Enter to send)";
    const answer = actionButton("Answer", "wiz-ask-btn wiz-reply", () => {
      if (!text.value.trim()) { error.textContent = "write an answer first"; text.focus(); return; }
      send({ action: "answer", text: text.value.trim() });
    });
    text.onkeydown = (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); answer.click(); } };
    row.append(text, answer);
  } else {
    const reason = el("input", "wiz-ask-reason");
    reason.type = "text";
    reason.placeholder = "reason to deny (the agent reads it)";
    const approve = actionButton("Approve", "wiz-ask-btn wiz-approve", () => send({ action: "approve" }));
    const deny = actionButton("Deny", "wiz-ask-btn wiz-deny", () => {
      if (!reason.value.trim()) { error.textContent = "say why first: the agent reads the reason"; reason.focus(); return; }
      send({ action: "deny", reason: reason.value.trim() });
    });
    row.append(approve, reason, deny);
  }
  box.append(row, error, status);
  return box;
}

async function render({ model, el: root, experimental }) {
  root.classList.add("wiz-chat-panel");
  const head = el("div", "wiz-chat-head");
  const title = el("span", "wiz-chat-title", model.get("title"));
  const picker = el("select", "wiz-chat-agent");
  const busy = el("span", "wiz-chat-busy", "");
  head.append(title, picker, busy);
  const log = el("div", "wiz-chat-log");
  const form = el("form", "wiz-chat-form");
  const input = el("textarea", "wiz-chat-input");
  input.rows = 2;
  input.placeholder = "Message (Enter to send, Shift+Enter for a new line)";
  const button = el("button", "wiz-chat-send", "Send");
  button.type = "submit";
  form.append(input, button);
  root.append(head, log, form);
  const drafts = new Map(); // job id -> element being streamed into

  function drawAgents() {
    picker.replaceChildren();
    for (const name of model.get("agents")) {
      const o = el("option", null, name);
      o.value = name;
      picker.append(o);
    }
    picker.value = model.get("agent");
  }
  picker.onchange = () => { model.set("agent", picker.value); model.save_changes(); };

  let renderMarkdown;
  try {
    renderMarkdown = await markdownRenderer();
  } catch (e) { // the libraries did not load: plain text, still readable
    console.error("wiz chat: markdown is off", e);
    renderMarkdown = (text) => `<p class="wiz-plain">${escapeHtml(text)}</p>`;
  }

  // the body of a message: markdown, sanitized; a whole message also gets code actions
  function fill(body, text, whole) {
    body.innerHTML = renderMarkdown(text);
    if (whole) codeActions(body);
  }

  function bubble(role, author, text, whole = true) {
    const m = el("div", `wiz-msg wiz-msg-${role}`);
    m.append(el("div", "wiz-msg-author", author || role));
    const body = el("div", "wiz-msg-body");
    fill(body, text, whole);
    m.append(body);
    log.append(m);
    log.scrollTop = log.scrollHeight;
    return body;
  }

  // how an answer was made (job, model, request hash, tokens, cost): the bubble's tooltip
  function provenance(body, wiz) {
    if (!wiz) return;
    const m = body.parentElement;
    m.dataset.wizJob = wiz.job_id;
    m.title = `job ${wiz.job_id} · ${wiz.model} · request ${String(wiz.request_hash || "").slice(0, 12)}`
      + ` · ${wiz.tokens_in}+${wiz.tokens_out} tokens · $${Number(wiz.cost || 0).toFixed(4)}`
      + (wiz.cassette_key ? " · replayed" : "");
  }

  // input notes (a reply job waits for a person): plain text, and live controls while it waits
  const invoke = async (request) => (await experimental.invoke("_reply", request))[0];
  function inputNote(msg) {
    const m = el("div", "wiz-msg wiz-msg-input");
    m.dataset.wizJob = msg.job_id;
    m.append(el("div", "wiz-msg-author", msg.author || "wiz"));
    m.append(el("div", "wiz-msg-body wiz-plain", msg.content));
    if (msg.asks && experimental) m.append(askControls(msg.job_id, msg.asks, invoke));
    log.append(m);
    log.scrollTop = log.scrollHeight;
  }

  function add(msg) {
    if (msg.role === "input") return inputNote(msg);
    const streaming = msg.job_id !== undefined && drafts.get(msg.job_id);
    if (streaming) {
      fill(streaming, msg.content, true);
      streaming.parentElement.className = `wiz-msg wiz-msg-${msg.role}`;
      drafts.delete(msg.job_id);
      provenance(streaming, msg.wiz);
      return;
    }
    provenance(bubble(msg.role, msg.author, msg.content), msg.wiz);
  }

  model.on("msg:custom", (msg) => {
    if (msg.type === "history") { log.replaceChildren(); msg.messages.forEach(add); }
    else if (msg.type === "message") add(msg.message);
    else if (msg.type === "delta") {
      let body = drafts.get(msg.job);
      if (!body) { body = bubble("agent streaming", msg.author, "", false); body.dataset.text = ""; drafts.set(msg.job, body); }
      body.dataset.text += msg.text;
      fill(body, body.dataset.text, false);
      log.scrollTop = log.scrollHeight;
    } else if (msg.type === "replied") {
      for (const box of log.querySelectorAll(`.wiz-ask[data-job="${Number(msg.job)}"]:not(.wiz-ask-done)`)) box.wizDone(msg.reply);
    } else if (msg.type === "error") bubble("error", "wiz", msg.message);
  });
  model.on("change:busy", () => { busy.textContent = model.get("busy") ? "thinking…" : ""; root.classList.toggle("wiz-busy", model.get("busy")); });
  model.on("change:agents", drawAgents);

  function send() {
    const text = input.value.trim();
    if (!text) return;
    model.send({ type: "send", text, agent: picker.value });
    input.value = "";
  }
  form.onsubmit = (e) => { e.preventDefault(); send(); };
  input.onkeydown = (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); send(); } };
  drawAgents();
  // the conversation as saved in the widget's state: all there is in a saved notebook's
  // HTML (nbconvert, nbviewer); a live kernel replaces it with the history it sends
  (model.get("transcript") || []).forEach(add);
  model.send({ type: "ready" });
}

export default { render };
