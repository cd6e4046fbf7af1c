// The page: drop or pick photos, follow each job until it ends, open a finished one in the result view.
import { apiKey, getJob, saveApiKey, submitPhoto } from "./api.js";
import { friendlyError } from "./messages.js";
import { ResultView } from "./result.js";

const JOBS_STORAGE = "face3d.jobs";
const MAX_REMEMBERED = 20;
const POLL_MS = 1000;
const POLL_MS_PER_JOB = 250;      // many running jobs: poll each less often (reads are rate-limited per key)
const POLL_BACKOFF_MS = 10_000;
const UPLOAD_ATTEMPTS = 5;
const TERMINAL = new Set(["succeeded", "failed", "canceled"]);

const $ = (id) => document.getElementById(id);
const entries = [];          // newest first: { name, job, error, element, restored }
const waitingForKey = [];    // [entry, file, options] whose upload got 401: sent again once a key is saved
const result = new ResultView(notify);

// ---------------------------------------------------------------- notices and the API key

function notify(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

function askForKey() {
  notify("This server needs an API key: enter it above and press “Save key”.");
  $("api-key").focus();
}

function onKeySaved(event) {
  event.preventDefault();
  saveApiKey($("api-key").value.trim());
  notify("");
  for (const [entry, file, options] of waitingForKey.splice(0)) upload(entry, file, options);
  for (const entry of entries) if (entry.error?.code === "unauthorized" && entry.job) refresh(entry);
}

// ---------------------------------------------------------------- choosing photos

function pickFiles() {
  $("file-input").click();
}

function setUpDropZone() {
  const zone = $("drop-zone");
  zone.addEventListener("click", pickFiles);
  zone.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" && event.key !== " ") return;
    event.preventDefault();
    pickFiles();
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    submitFiles(event.dataTransfer.files);
  });
  // A photo dropped beside the zone must not replace the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
  $("file-input").addEventListener("change", (event) => {
    submitFiles(event.target.files);
    event.target.value = "";
  });
}

function currentOptions() {
  const maxFaces = $("opt-max-faces");
  if (!maxFaces.checkValidity()) {
    maxFaces.reportValidity();
    return null;
  }
  return { video: $("opt-video").checked, maxFaces: maxFaces.value ? Number(maxFaces.value) : null };
}

async function submitFiles(fileList) {
  const options = currentOptions();
  if (!options) return;
  const pending = [...fileList].map((file) => [addEntry({ name: file.name }), file, options]);
  for (const [entry, file] of pending) await upload(entry, file, options);
}

async function upload(entry, file, options) {
  for (let attempt = 1; attempt <= UPLOAD_ATTEMPTS; attempt += 1) {
    entry.error = null;
    render(entry);
    try {
      entry.job = await submitPhoto(file, options);
      remember();
      return render(entry);
    } catch (error) {
      entry.error = { code: error.code, message: error.message };
      render(entry);
      if (error.status === 401) {
        waitingForKey.push([entry, file, options]);
        return askForKey();
      }
      if (error.code !== "rate_limited" || attempt === UPLOAD_ATTEMPTS) return;
      await sleep((error.retryAfterS ?? 5) * 1000);    // the following photos wait too: uploads go one by one
    }
  }
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

// ---------------------------------------------------------------- the job list

function addEntry(fields, { atEnd = false } = {}) {
  const element = document.createElement("li");
  element.className = "job";
  element.innerHTML = `<div class="job-head"><span class="job-name"></span><span class="job-state"></span></div>
    <progress class="job-progress" max="1" value="0"></progress><p class="job-message" hidden></p>`;
  const entry = { job: null, error: null, restored: false, ...fields, element };
  if (atEnd) {
    entries.push(entry);
    $("job-list").append(element);
  } else {
    entries.unshift(entry);
    $("job-list").prepend(element);
  }
  $("jobs-empty").hidden = true;
  render(entry);
  return entry;
}

function stateOf(entry) {
  if (entry.error) return entry.error.code === "unauthorized" ? "needs-key" : "failed";
  return entry.job?.state ?? "uploading";
}

function stateText(entry) {
  const job = entry.job;
  switch (stateOf(entry)) {
    case "uploading": return "uploading…";
    case "needs-key": return "waiting for an API key";
    case "queued": return "queued";
    case "running": return `running${job.stage ? `: ${job.stage.replaceAll("_", " ")}` : ""}`;
    case "succeeded": return `done: ${job.faces.length} face${job.faces.length === 1 ? "" : "s"}`;
    default: return stateOf(entry);
  }
}

function render(entry) {
  const { element, job } = entry;
  const state = stateOf(entry);
  element.dataset.state = state;
  if (job) element.dataset.jobId = job.id;
  element.querySelector(".job-state").textContent = stateText(entry);
  renderName(entry, state);
  const progress = element.querySelector(".job-progress");
  progress.hidden = TERMINAL.has(state) || state === "needs-key";
  if (state === "running") progress.value = job.progress || 0;
  else progress.removeAttribute("value");     // indeterminate while uploading or queued
  const failure = entry.error ?? (job?.state === "failed" || job?.state === "canceled" ? job.error : null);
  const message = element.querySelector(".job-message");
  message.textContent = failure ? friendlyError(failure.code, failure.message) : "";
  message.hidden = !failure;
}

function renderName(entry, state) {
  const slot = entry.element.querySelector(".job-name");
  const wanted = state === "succeeded" ? "BUTTON" : "SPAN";
  if (slot.tagName !== wanted) {
    const replacement = document.createElement(wanted);
    replacement.className = "job-name";
    if (wanted === "BUTTON") {
      replacement.type = "button";
      replacement.title = "Show the 3D result";
      replacement.addEventListener("click", () => result.show(entry.job, { focus: true }));
    }
    slot.replaceWith(replacement);
    replacement.textContent = entry.name;
    return;
  }
  slot.textContent = entry.name;
}

async function refresh(entry) {
  const before = entry.job?.state;
  try {
    entry.job = await getJob(entry.job.id);
    entry.error = null;
  } catch (error) {
    if (error.code === "not_found") return forget(entry);
    if (error.status === 401) {
      entry.error = { code: error.code, message: error.message };
      askForKey();
    }
    render(entry);
    return error.code;         // a passing network error or a rate limit: keep polling
  }
  render(entry);
  const finishedNow = entry.job.state === "succeeded" && before !== "succeeded" && !entry.restored;
  entry.restored = false;
  if (finishedNow && result.jobId === null) result.show(entry.job);
}

async function pollForever() {
  const active = entries.filter((entry) => entry.job && !TERMINAL.has(entry.job.state) && !entry.error);
  const failures = await Promise.all(active.map(refresh));
  const limited = failures.includes("rate_limited");
  setTimeout(pollForever, limited ? POLL_BACKOFF_MS : Math.max(POLL_MS, active.length * POLL_MS_PER_JOB));
}

// ---------------------------------------------------------------- remembering jobs across reloads

function remember() {
  const saved = entries.filter((entry) => entry.job).slice(0, MAX_REMEMBERED)
    .map((entry) => ({ id: entry.job.id, name: entry.name }));
  localStorage.setItem(JOBS_STORAGE, JSON.stringify(saved));
}

function forget(entry) {
  entries.splice(entries.indexOf(entry), 1);
  entry.element.remove();
  $("jobs-empty").hidden = entries.length > 0;
  remember();
}

function restore() {
  let saved = [];
  try {
    saved = JSON.parse(localStorage.getItem(JOBS_STORAGE) || "[]");
  } catch {
    localStorage.removeItem(JOBS_STORAGE);
  }
  for (const { id, name } of Array.isArray(saved) ? saved : []) {
    if (typeof id !== "string") continue;
    const entry = addEntry({ name: String(name ?? id), job: { id, state: "queued" }, restored: true },
      { atEnd: true });
    refresh(entry);
  }
}

// ---------------------------------------------------------------- start

$("api-key").value = apiKey();
$("key-form").addEventListener("submit", onKeySaved);
setUpDropZone();
restore();
pollForever();
document.documentElement.dataset.ready = "true";
