// wiz_jupyter job board. Plain DOM; every value is set with textContent.
const STATUSES = ["waiting", "delayed", "blocked", "active", "awaiting_input", "completed", "failed", "cancelled"];
const LIVE = new Set(["waiting", "delayed", "blocked", "active", "awaiting_input"]);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function fmtTime(t) {
  if (!t) return "";
  const d = new Date(t * 1000);
  return d.toLocaleTimeString();
}

function fmtDuration(job) {
  if (!job.started_at) return "";
  const end = job.finished_at || Date.now() / 1000;
  const s = Math.max(0, end - job.started_at);
  return s < 1 ? `${Math.round(s * 1000)} ms` : s < 120 ? `${s.toFixed(1)} s` : `${Math.round(s / 60)} min`;
}

// Where JupyterLab would open a file: its page config gives the base URL and the
// server's root folder. Outside JupyterLab (Notebook 7 shares it; VS Code has none),
// null: the board then shows the path as text.
function labHref(job) {
  let config;
  try {
    config = JSON.parse(document.getElementById("jupyter-config-data").textContent);
  } catch {
    return null;
  }
  const root = (config.serverRoot || "").replace(/\/+$/, "");
  const base = config.baseUrl || "/";
  for (const path of [job.notebook, job.notebook_home]) {
    if (root && path && path.startsWith(root + "/")) {
      const rel = path.slice(root.length + 1).split("/").map(encodeURIComponent).join("/");
      return `${base}lab/tree/${rel}`;
    }
  }
  return null;
}

function render({ model, el: root, experimental }) {
  const jobs = new Map();
  root.classList.add("wiz-board");

  const header = el("div", "wiz-board-header");
  const title = el("span", "wiz-board-title", "wiz jobs");
  const counts = el("div", "wiz-board-counts");
  const search = el("input", "wiz-board-search");
  search.placeholder = "filter by task, agent, group or id";
  search.value = model.get("text_filter");
  const cluster = el("span", "wiz-board-cluster");
  header.append(title, cluster, counts, search);
  const message = el("div", "wiz-board-message");
  const table = el("table", "wiz-board-table");
  const thead = el("thead");
  const hr = el("tr");
  for (const h of ["id", "status", "task / agent", "progress", "attempts", "started", "time", ""]) hr.append(el("th", null, h));
  thead.append(hr);
  const tbody = el("tbody");
  table.append(thead, tbody);
  root.append(header, message, table);

  function drawCounts() {
    counts.replaceChildren();
    const c = model.get("counts") || {};
    const current = model.get("status_filter");
    const all = el("button", "wiz-count" + (current === "" ? " wiz-selected" : ""), "all");
    all.onclick = () => { model.set("status_filter", ""); model.save_changes(); };
    counts.append(all);
    for (const s of STATUSES) {
      const b = el("button", `wiz-count wiz-${s}` + (current === s ? " wiz-selected" : ""), `${s} ${c[s] || 0}`);
      b.dataset.status = s;
      b.onclick = () => { model.set("status_filter", current === s ? "" : s); model.save_changes(); };
      counts.append(b);
    }
  }

  // the Dask cluster of ws.use_dask: where executor="dask" bodies run, and its dashboard
  function drawCluster() {
    cluster.replaceChildren();
    const c = model.get("cluster") || {};
    if (!c.state) return;
    const text = c.state === "connected"
      ? `dask: ${c.kind} ${c.address} · ${c.workers} worker${c.workers === 1 ? "" : "s"}`
      : `dask: ${c.state}${c.error ? " · " + c.error : ""}`;
    cluster.append(el("span", `wiz-dask wiz-dask-${c.state.replace(/ /g, "-")}`, text));
    if (c.dashboard && /^https?:\/\//.test(c.dashboard)) {
      const a = el("a", "wiz-dask-dashboard", "dashboard");
      a.href = c.dashboard;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      cluster.append(" · ", a);
    }
  }

  function matches(job) {
    const s = model.get("status_filter");
    if (s && job.status !== s) return false;
    const t = (model.get("text_filter") || "").toLowerCase();
    if (t && !`${job.task} ${job.agent || ""} ${job.group || ""} ${job.id}`.toLowerCase().includes(t)) return false;
    return true;
  }

  function action(label, cls, onclick) {
    const b = el("button", `wiz-action ${cls}`, label);
    b.onclick = onclick;
    return b;
  }

  // A row is built again only when its job changed, and the table's rows are touched only
  // where they differ: a row replaced under the pointer loses the click being made on it
  // (a cancel pressed as a patch or the duration ticker redrew the table did nothing).
  const built = new Map();  // job id -> {key, tr}
  function drawRows() {
    const limit = model.get("limit");
    const shown = [...jobs.values()].filter(matches).sort((a, b) => b.id - a.id).slice(0, limit);
    const trs = shown.map((job) => {
      const key = JSON.stringify(job);
      const had = built.get(job.id);
      if (had && had.key === key) return had.tr;
      const tr = buildRow(job);
      built.set(job.id, { key, tr });
      return tr;
    });
    const ids = new Set(shown.map((j) => j.id));
    for (const id of [...built.keys()]) if (!ids.has(id)) built.delete(id);
    if (!trs.length) {
      const tr = el("tr");
      const td = el("td", "wiz-empty", "no jobs");
      td.colSpan = 8;
      tr.append(td);
      trs.push(tr);
    }
    const now = [...tbody.children];
    if (now.length !== trs.length) {
      tbody.replaceChildren(...trs);
      return;
    }
    trs.forEach((tr, i) => { if (now[i] !== tr) now[i].replaceWith(tr); });
  }

  // an active job's duration, every second: its cell's text only
  function tick() {
    for (const job of jobs.values()) {
      if (job.status !== "active") continue;
      const cell = built.get(job.id)?.tr.querySelector(".wiz-duration");
      if (cell) cell.textContent = fmtDuration(job);
    }
  }

  function buildRow(job) {
    const tr = el("tr", `wiz-row wiz-row-${job.status}`);
    tr.dataset.jobId = job.id;
    tr.append(el("td", "wiz-id", job.id));
    const st = el("td");
    st.append(el("span", `wiz-badge wiz-${job.status}`, job.status));
    tr.append(st);
    const name = job.group ? `${job.task} [${job.group}]` : job.task;  // its group, if any
    const label = job.agent ? `${name} · ${job.agent}`
      : job.notebook_source ? `${name} · ${job.notebook_source}` : name;
    const what = el("td", null, label);
    // what a parked job asks (a tool call and its arguments, or a question): as text
    if (job.asks) what.append(el("div", "wiz-asks", job.asks));
    tr.append(what);
    const pc = el("td");
    const p = job.progress;
    // a number is a percentage; {done, of} (a notebook's cells) a fraction
    const steps = p && typeof p === "object" && typeof p.done === "number" && p.of > 0;
    if (typeof p === "number" || steps) {
      const pct = steps ? (100 * p.done) / p.of : p;
      const bar = el("div", "wiz-progress");
      const fill = el("div", "wiz-progress-fill");
      fill.style.width = `${Math.max(0, Math.min(100, pct))}%`;
      bar.append(fill);
      bar.title = steps ? `${p.done}/${p.of}` : `${p}%`;
      pc.append(bar);
      if (steps) pc.append(el("span", "wiz-progress-steps", `${p.done}/${p.of}`));
    } else if (p) {
      pc.textContent = JSON.stringify(p);
    }
    tr.append(pc);
    const tries = el("td", null, `${job.attempts_made}/${job.attempts}`);
    if (job.why) tries.append(el("span", "wiz-why", ` ${job.why}`));
    tr.append(tries);
    tr.append(el("td", null, fmtTime(job.started_at)));
    tr.append(el("td", "wiz-duration", fmtDuration(job)));
    const acts = el("td", "wiz-actions");
    if (job.status === "awaiting_input") {
      if (job.ask_kind === "question") {
        acts.append(action("answer", "wiz-answer", () => {
          const text = window.prompt(job.asks || "Your answer");
          if (text) act({ action: "answer", id: job.id, text });
        }));
      } else {
        acts.append(action("approve", "wiz-approve", () => act({ action: "approve", id: job.id })));
      }
      acts.append(action("deny", "wiz-deny", () => {
        const reason = window.prompt("Why? (the agent reads it)");
        if (reason) act({ action: "deny", id: job.id, reason });
      }));
    }
    if (LIVE.has(job.status)) {
      acts.append(action("cancel", "wiz-cancel", () => act({ action: "cancel", id: job.id })));
      if (job.status !== "active") {
        acts.append(action("▲", "wiz-up", () => act({ action: "priority", id: job.id, priority: job.priority + 1 })));
        acts.append(action("▼", "wiz-down", () => act({ action: "priority", id: job.id, priority: job.priority - 1 })));
      }
    } else if (job.status === "failed" || job.status === "cancelled") {
      acts.append(action("retry", "wiz-retry", () => act({ action: "retry", id: job.id })));
    }
    if (job.notebook) {
      const href = labHref(job);
      if (href) {
        const a = el("a", "wiz-action wiz-open", "open");
        a.href = href;
        a.target = "_blank";
        a.rel = "noopener";
        a.title = job.notebook;
        acts.append(a);
      } else {
        acts.append(el("span", "wiz-notebook-path", job.notebook));
      }
    }
    tr.append(acts);
    if (job.error && job.status === "failed") tr.title = job.error;
    return tr;
  }

  function showError(text) {
    message.textContent = text;
    setTimeout(() => { message.textContent = ""; }, 5000);
  }

  // A button's request is an anywidget command: its answer says whether the queue took it.
  async function act(request) {
    try {
      const [answer] = await experimental.invoke("_act", request);
      if (answer && answer.error) showError(answer.error);
    } catch (e) {
      showError(String(e));
    }
  }

  let searchTimer = null;
  search.oninput = () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => { model.set("text_filter", search.value); model.save_changes(); }, 200);
  };

  model.on("msg:custom", (msg) => {
    if (msg.type === "snapshot") {
      jobs.clear();
      for (const j of msg.jobs) jobs.set(j.id, j);
    } else if (msg.type === "patch") {
      for (const j of msg.jobs) jobs.set(j.id, j);
      // keep memory bounded: forget the oldest finished jobs beyond a margin
      const limit = model.get("limit");
      if (jobs.size > limit * 3) {
        const old = [...jobs.values()].filter((j) => !LIVE.has(j.status)).sort((a, b) => a.id - b.id);
        for (const j of old.slice(0, jobs.size - limit * 2)) jobs.delete(j.id);
      }
    }
    drawRows();
  });
  model.on("change:counts", drawCounts);
  model.on("change:cluster", drawCluster);
  model.on("change:status_filter", () => { drawCounts(); drawRows(); });
  // the rows as saved in the widget's state: all a saved notebook's HTML has; a live
  // kernel answers _ready with a snapshot that replaces them
  for (const j of model.get("saved") || []) jobs.set(j.id, j);
  drawCounts();
  drawCluster();
  drawRows();
  experimental.invoke("_ready", {}).catch((e) => showError(String(e)));
  const ticker = setInterval(tick, 1000);
  return () => clearInterval(ticker);
}

export default { render };
