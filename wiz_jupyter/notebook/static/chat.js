// wiz_jupyter chat panel. Markdown is rendered from text that was HTML-escaped first.

function escapeHtml(s) {
  return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

function inline(s) {
  // s is escaped already; only these few patterns become markup
  return s
    .replace(/`([^`]+)`/g, "<code>$1</code>")
    .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
    .replace(/(^|[\s(])\*([^*\s][^*]*)\*/g, "$1<em>$2</em>")
    .replace(/\[([^\]]+)\]\((https?:\/\/[^\s)"]+)\)/g, '<a href="$2" target="_blank" rel="noopener noreferrer">$1</a>');
}

export function renderMarkdown(text) {
  const lines = escapeHtml(text).split("\n");
  const out = [];
  let code = null, list = null;
  for (const line of lines) {
    if (line.startsWith("```")) {
      if (code === null) { code = []; } else { out.push(`<pre><code>${code.join("\n")}</code></pre>`); code = null; }
      continue;
    }
    if (code !== null) { code.push(line); continue; }
    const item = line.match(/^\s*(?:[-*]|\d+\.)\s+(.*)$/);
    if (item) { (list = list || []).push(`<li>${inline(item[1])}</li>`); continue; }
    if (list) { out.push(`<ul>${list.join("")}</ul>`); list = null; }
    const h = line.match(/^(#{1,4})\s+(.*)$/);
    if (h) { out.push(`<h${h[1].length + 2}>${inline(h[2])}</h${h[1].length + 2}>`); continue; }
    if (line.trim()) out.push(`<p>${inline(line)}</p>`);
  }
  if (list) out.push(`<ul>${list.join("")}</ul>`);
  if (code !== null) out.push(`<pre><code>${code.join("\n")}</code></pre>`);
  return out.join("");
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function render({ model, el: root }) {
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

  function bubble(role, author, text) {
    const m = el("div", `wiz-msg wiz-msg-${role}`);
    m.append(el("div", "wiz-msg-author", author || role));
    const body = el("div", "wiz-msg-body");
    body.innerHTML = renderMarkdown(text); // escaped before any markup is added
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

  function add(msg) {
    const streaming = msg.job_id !== undefined && drafts.get(msg.job_id);
    if (streaming) {
      streaming.innerHTML = renderMarkdown(msg.content);
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
      if (!body) { body = bubble("agent streaming", msg.author, ""); body.dataset.text = ""; drafts.set(msg.job, body); }
      body.dataset.text += msg.text;
      body.innerHTML = renderMarkdown(body.dataset.text);
      log.scrollTop = log.scrollHeight;
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
  model.send({ type: "ready" });
}

export default { render };
