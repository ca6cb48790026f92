// wiz_jupyter job note: one line that says when a background job ends. textContent only.
const ICONS = { completed: "✓", failed: "✗", cancelled: "–" };

function render({ model, el }) {
  el.classList.add("wiz-note");
  const line = document.createElement("span");
  el.append(line);
  function draw() {
    const status = model.get("status");
    const done = status in ICONS;
    el.className = `wiz-note wiz-note-${status}` + (done ? " wiz-note-done" : "");
    el.dataset.status = status;
    const detail = model.get("detail");
    line.textContent = `${ICONS[status] || "…"} ${model.get("label")} ${status}` + (detail ? `: ${detail}` : "");
  }
  model.on("change:status", draw);
  model.on("change:detail", draw);
  draw();
}

export default { render };
