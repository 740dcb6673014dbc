// dreamvid studio: the page. Plain JavaScript, no build step. The server holds all state
// (renders, files); this page shows it (server-sent events) and sends requests (JSON POSTs).
"use strict";

const $ = (id) => document.getElementById(id);
const editor = $("editor"), gutter = $("gutter"), slider = $("frame");

const page = {
  name: null,        // the open schedule (its name in the folder)
  saved: "",         // its text on disk, as last loaded or saved
  total: 0,          // frames of the last valid check
  checkSeq: 0,       // newest check request (older answers are dropped)
  previewCtl: null,  // AbortController of the preview in flight
  rows: [],          // the renders, from the server
  timers: {},
};

function debounce(key, ms, fn) {
  clearTimeout(page.timers[key]);
  page.timers[key] = setTimeout(fn, ms);
}

// ---------------------------------------------------------------------------- requests

async function request(path, body, { signal, binary } = {}) {
  const init = body === undefined ? { signal } : {
    method: "POST", signal, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(path, { credentials: "same-origin", ...init });
  if (!response.ok) {
    let reason = `${response.status} ${response.statusText}`;
    try { reason = (await response.json()).error || reason; } catch (e) { /* not JSON */ }
    const err = new Error(reason);
    err.status = response.status;
    throw err;
  }
  return binary ? response.blob() : response.json();
}

function setImage(img, blob) {
  if (img.src && img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(blob);
}

// ------------------------------------------------------------------------------ editor

function drawGutter(badLines = new Set()) {
  const count = editor.value.split("\n").length;
  const out = [];
  for (let i = 1; i <= count; i++) out.push(badLines.has(i) ? `<span class="bad">${i}</span>` : String(i));
  gutter.innerHTML = out.join("\n");
  gutter.scrollTop = editor.scrollTop;
}

function goToLine(line) {
  const lines = editor.value.split("\n");
  const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
  editor.focus();
  editor.setSelectionRange(start, start + (lines[line - 1] || "").length);
  editor.scrollTop = Math.max(0, (line - 5) * parseFloat(getComputedStyle(editor).lineHeight));
}

function markDirty() {
  const dirty = page.name !== null && editor.value !== page.saved;
  $("dirty").textContent = dirty ? "● unsaved" : "";
  $("save").disabled = !dirty;
}

async function openSchedule(name) {
  if (page.name && editor.value !== page.saved && !confirm(`Discard the unsaved changes to ${page.name}?`)) return;
  const file = await request(`/api/file?name=${encodeURIComponent(name)}`);
  page.name = file.name;
  page.saved = file.text;
  editor.value = file.text;
  editor.disabled = false;
  $("current").textContent = file.name;
  markDirty();
  drawGutter();
  showRows();
  check();
}

async function save() {
  if (!page.name) return;
  const text = editor.value;
  await request("/api/save", { name: page.name, text });
  page.saved = text;
  markDirty();
}

// ------------------------------------------------------------------------------ checks

async function check() {
  if (!page.name) return;
  const seq = ++page.checkSeq, text = editor.value;
  let result;
  try {
    result = await request("/api/check", { name: page.name, text });
  } catch (err) {
    result = { ok: false, problems: [{ message: err.message, line: null }], summary: "" };
  }
  if (seq !== page.checkSeq) return;  // the text changed meanwhile
  const list = $("problems");
  list.replaceChildren();
  const bad = new Set();
  for (const p of result.problems) {
    const li = document.createElement("li");
    li.textContent = (p.line ? `line ${p.line}: ` : "") + p.message;
    if (p.line) {
      bad.add(p.line);
      li.addEventListener("click", () => goToLine(p.line));
    }
    list.append(li);
  }
  drawGutter(bad);
  const status = $("check");
  status.className = result.ok ? "ok" : "bad";
  status.textContent = result.ok
    ? `✓ valid: ${result.total_frames} frames, ${result.size[0]}x${result.size[1]}, ${result.fps} fps`
    : `✗ ${result.problems.length} problem${result.problems.length === 1 ? "" : "s"}`;
  $("summary").textContent = result.ok ? result.summary : "";
  if (!result.ok) {
    if (page.previewCtl) page.previewCtl.abort();
    $("motion-button").disabled = true;
    $("estimate").disabled = true;
    $("preview-status").textContent = "fix the schedule to preview it";
    return;
  }
  page.total = result.total_frames;
  $("motion-button").disabled = false;
  $("estimate").disabled = false;
  slider.max = String(page.total - 1);
  slider.disabled = false;
  if (Number(slider.value) > page.total - 1) slider.value = String(page.total - 1);
  $("frame-value").textContent = slider.value;
  timeline(seq, text);
  preview();
}

async function timeline(seq, text) {
  try {
    const blob = await request("/api/timeline", { name: page.name, text }, { binary: true });
    if (seq === page.checkSeq) setImage($("timeline"), blob);
  } catch (err) { /* the check shows what is wrong */ }
}

// ----------------------------------------------------------------------------- preview

async function preview(retry = true) {
  if (!page.name || !page.total) return;
  if (page.previewCtl) page.previewCtl.abort();  // the server cancels it too: one preview at a time
  const ctl = page.previewCtl = new AbortController();
  const frame = Number(slider.value), scale = Number($("scale").value);
  const status = $("preview-status");
  status.textContent = `dreaming frame ${frame}…`;
  try {
    const blob = await request("/api/preview", { name: page.name, text: editor.value, frame, scale },
                               { signal: ctl.signal, binary: true });
    const img = $("preview");
    setImage(img, blob);
    img.dataset.frame = String(frame);
    img.dataset.scale = String(scale);
    status.textContent = `frame ${frame} at scale ${scale}${scale === 1 ? " (as the video shows it)" : ""}`;
  } catch (err) {
    if (err.name === "AbortError") return;  // a newer preview replaced it
    if (err.status === 409 && page.previewCtl === ctl && retry) return preview(false);  // another tab's won
    if (err.status === 409) return;
    status.textContent = err.message;
  }
}

async function motion() {
  if (!page.name || !page.total) return;
  const status = $("motion-status"), video = $("motion");
  status.textContent = "moving the camera, no dreaming…";
  try {
    const blob = await request("/api/motion", { name: page.name, text: editor.value }, { binary: true });
    if (video.src && video.src.startsWith("blob:")) URL.revokeObjectURL(video.src);
    video.src = URL.createObjectURL(blob);
    video.dataset.name = page.name;
    video.play().catch(() => { /* autoplay refused: the controls remain */ });
    status.textContent = `the camera path: ${page.total} frames, no dreaming (preview --motion)`;
  } catch (err) {
    status.textContent = err.message;
  }
}

async function estimate() {
  if (!page.name || !page.total) return;
  const status = $("estimate-status");
  status.textContent = "dreaming two frames of the heaviest segment at full size…";
  try {
    status.textContent = (await request("/api/estimate", { name: page.name, text: editor.value })).text;
  } catch (err) {
    status.textContent = err.message;
  }
}

// ----------------------------------------------------------------------------- renders

function fmtTime(seconds) {
  if (seconds == null || !isFinite(seconds)) return "";
  const s = Math.round(seconds), h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60;
  return (h ? `${h}:${String(m).padStart(2, "0")}` : `${m}`) + `:${String(s % 60).padStart(2, "0")}`;
}

function describe(row) {
  switch (row.state) {
    case "running": case "starting": case "stopping": {
      const bits = [`${row.state} ${row.frame}/${row.total}`];
      if (row.fps) bits.push(`${row.fps.toFixed(2)} fps`);
      if (row.eta != null) bits.push(`ETA ${fmtTime(row.eta)}`);
      if (row.message && row.state !== "starting") bits.push(row.message);
      return bits.join(" · ");
    }
    case "done": return `done: ${row.output}`;
    case "stopped": return `stopped at frame ${row.frame} of ${row.total}`;
    default: return row.message || row.state;
  }
}

function showRows() {
  const body = $("renders").tBodies[0];
  body.replaceChildren();
  for (const row of page.rows) {
    const tr = document.createElement("tr");
    tr.dataset.schedule = row.schedule;
    tr.dataset.state = row.state;
    if (row.schedule === page.name) tr.className = "current";
    const name = document.createElement("td");
    name.textContent = row.schedule;
    const state = document.createElement("td");
    state.className = `state state-${row.state.replace(" ", "-")}`;
    state.textContent = describe(row);
    tr.append(name, state);
    if (row.state === "job file") tr.className += " job";  // dreamvid batch renders it, not this page
    else tr.addEventListener("click", () => openSchedule(row.schedule).catch((e) => alert(e.message)));
    body.append(tr);
  }
  showRender();
}

function showRender() {
  const row = page.rows.find((r) => r.schedule === page.name);
  const running = row && ["starting", "running", "stopping"].includes(row.state);
  const button = $("render");
  button.disabled = !row || running || row.state === "invalid" || row.state === "no output";
  button.textContent = row && row.state === "stopped" ? "Resume" : "Render";
  $("stop").disabled = !running || row.state === "stopping";
  const bar = $("progress");
  bar.max = Math.max(1, row ? row.total : 1);
  bar.value = row ? row.frame : 0;
  if (!row) { $("render-status").textContent = ""; return; }
  if (!page.renderError || running) $("render-status").textContent = describe(row);
  showPeek(row, running);
  const video = $("video");
  if (row.video) {
    const src = `/api/video?name=${encodeURIComponent(row.video.name)}&v=${row.video.version}`;
    if (video.getAttribute("src") !== src && !running) {
      video.setAttribute("src", src);
      video.dataset.version = String(row.video.version);
      video.load();
      video.play().catch(() => { /* autoplay refused: the controls remain */ });
    }
  } else if (video.hasAttribute("src")) {
    video.removeAttribute("src");
    video.load();
  }
}

function showPeek(row, running) {
  // The render's newest frame (its work folder's peek.jpg), while it runs or where it stopped.
  const figure = $("peek-figure"), img = $("peek");
  const live = row.peek && (running || row.state === "stopped");
  figure.classList.toggle("live", Boolean(live));
  if (!live) return;
  const src = `/api/peek?name=${encodeURIComponent(row.schedule)}&v=${row.peek.version}`;
  if (img.getAttribute("src") !== src) {
    img.setAttribute("src", src);
    img.dataset.frame = String(row.peek.frame);
  }
  $("peek-status").textContent = `frame ${row.peek.frame} of ${row.peek.total}` +
    (running ? ": the render's newest frame" : ": where the render stopped");
}

async function startRender() {
  page.renderError = false;
  try {
    if (editor.value !== page.saved) await save();
    await request("/api/render", { name: page.name, fresh: $("fresh").checked });
    $("fresh").checked = false;
  } catch (err) {
    page.renderError = true;
    $("render-status").textContent = err.message;
  }
}

async function stopRender() {
  try { await request("/api/stop", { name: page.name }); } catch (err) { $("render-status").textContent = err.message; }
}

function listen() {
  const source = new EventSource("/api/events");
  const badge = $("connection");
  source.addEventListener("open", () => { badge.textContent = "live"; badge.className = "badge live"; });
  source.addEventListener("error", () => { badge.textContent = "reconnecting"; badge.className = "badge down"; });
  source.addEventListener("state", (e) => {
    const state = JSON.parse(e.data);
    $("folder").textContent = state.folder;
    page.rows = state.renders;
    showRows();
  });
}

// ---------------------------------------------------------------------------- wiring

editor.addEventListener("input", () => { markDirty(); drawGutter(); debounce("check", 300, check); });
editor.addEventListener("scroll", () => { gutter.scrollTop = editor.scrollTop; });
editor.addEventListener("keydown", (e) => {
  if (e.key === "Tab") {  // two spaces, as YAML wants
    e.preventDefault();
    editor.setRangeText("  ", editor.selectionStart, editor.selectionEnd, "end");
    editor.dispatchEvent(new Event("input"));
  }
});
document.addEventListener("keydown", (e) => {
  if ((e.ctrlKey || e.metaKey) && e.key === "s") { e.preventDefault(); save().catch((err) => alert(err.message)); }
});
slider.addEventListener("input", () => { $("frame-value").textContent = slider.value; debounce("preview", 150, preview); });
$("scale").addEventListener("change", () => preview());
$("motion-button").addEventListener("click", motion);
$("estimate").addEventListener("click", estimate);
$("save").addEventListener("click", () => save().catch((err) => alert(err.message)));
$("render").addEventListener("click", startRender);
$("stop").addEventListener("click", stopRender);
$("new-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  let name = $("new-name").value.trim();
  if (!name) return;
  if (!/\.ya?ml$/i.test(name)) name += ".yaml";
  try {
    const made = await request("/api/new", { name });
    $("new-name").value = "";
    $("new-status").textContent = "";
    await openSchedule(made.name);
  } catch (err) { $("new-status").textContent = err.message; }
});
window.addEventListener("beforeunload", (e) => { if (page.name && editor.value !== page.saved) e.preventDefault(); });

listen();
