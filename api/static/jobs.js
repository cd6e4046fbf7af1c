// The job list, read from the server (GET /v1/jobs, cursor paging), so history survives reloads and other browsers
// with the same key; photos being uploaded sit on top until the server knows them. Each row: thumbnail, state,
// faces, time, and the actions its state allows (cancel, retry, delete; "try again" for a failed upload).
import { cancelJob, deleteJob, fetchBlob, getJob, inputUrl, listJobs, retryJob } from "./api.js";
import { friendlyError } from "./messages.js";

const PAGE_SIZE = 20;
const THUMB_PX = 96;              // 3rem at 2x
const HIDDEN_STORAGE = "face3d.hiddenJobs";
const MAX_HIDDEN = 500;
const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
const ALMOST_DONE = 0.99;         // the bar shows 100 % only once the job has succeeded
const $ = (id) => document.getElementById(id);

const ROW_HTML = `<img class="thumb" alt="" hidden><span class="thumb-blank" aria-hidden="true"></span>
  <div class="job-body"><div class="job-head"><span class="job-name"></span><span class="job-state"></span></div>
  <div class="job-meta muted"></div><progress class="job-progress" max="1" value="0"></progress>
  <p class="job-message" hidden></p><div class="job-actions"></div></div>`;

export class JobList {
  constructor({ onOpen, onFinished, onAuthError, onUploadAgain, notify }) {
    Object.assign(this, { onOpen, onFinished, onAuthError, onUploadAgain, notify });
    this.list = $("job-list");
    this.entries = [];             // in display order: { id, job, name, file, options, error, element, shown }
    this.cursor = null;
    this.selectedId = null;
    this.hidden = new Set(readHidden());
    $("job-filter").addEventListener("change", () => this.reload());
    $("jobs-more").addEventListener("click", () => this.loadPage());
    $("clear-finished").addEventListener("click", () => this.clearFinished());
    $("jobs-unhide").addEventListener("click", () => this.unhide());
  }

  // ------------------------------------------------------------ loading from the server

  async reload() {
    for (const entry of this.entries.filter((e) => e.id)) this.drop(entry);
    this.cursor = null;
    await this.loadPage();
  }

  async loadPage() {
    let page;
    try {
      page = await listJobs({ cursor: this.cursor, state: $("job-filter").value, limit: PAGE_SIZE });
    } catch (error) {
      if (error.status === 401) return this.onAuthError(error);
      return this.notify(`The job list could not be loaded: ${friendlyError(error.code, error.message)}`);
    }
    for (const job of page.items) {
      if (this.hidden.has(job.id) || this.byId(job.id)) continue;
      this.add({ id: job.id, job, name: job.input_name || job.id }, { atEnd: true });
    }
    this.cursor = page.next_cursor;
    $("jobs-more").hidden = !this.cursor;
    this.updateEmpty();
  }

  byId(id) {
    return this.entries.find((entry) => entry.id === id) ?? null;
  }

  async refresh(entry) {
    const before = entry.job?.state;
    try {
      entry.job = await getJob(entry.id);
      entry.error = null;
    } catch (error) {
      if (error.code === "not_found") return this.drop(entry);
      if (error.status === 401) this.onAuthError(error);
      return error.code;                      // a passing network error or a rate limit: keep polling
    }
    this.render(entry);
    if (entry.job.state === "succeeded" && before && before !== "succeeded") this.onFinished(entry.job);
    return null;
  }

  active() {
    return this.entries.filter((entry) => entry.id && entry.job && !TERMINAL.has(entry.job.state) && !entry.error);
  }

  // ------------------------------------------------------------ rows

  add(fields, { atEnd = false } = {}) {
    const element = document.createElement("li");
    element.className = "job";
    element.innerHTML = ROW_HTML;
    const entry = { id: null, job: null, error: null, shown: 0, ...fields, element };
    if (atEnd) {
      this.entries.push(entry);
      this.list.append(element);
    } else {
      this.entries.unshift(entry);
      this.list.prepend(element);
    }
    this.updateEmpty();
    this.render(entry);
    if (entry.id) this.loadThumb(entry);
    return entry;
  }

  known(entry, job) {
    entry.id = job.id;
    entry.job = job;
    entry.error = null;
    this.render(entry);
    this.loadThumb(entry);
  }

  drop(entry) {
    const at = this.entries.indexOf(entry);
    if (at >= 0) this.entries.splice(at, 1);
    if (entry.thumbUrl) URL.revokeObjectURL(entry.thumbUrl);
    entry.element.remove();
    this.updateEmpty();
  }

  updateEmpty() {
    const filter = $("job-filter");
    $("jobs-empty").hidden = this.entries.length > 0;
    $("jobs-empty").textContent = filter.value ? `No ${filter.selectedOptions[0].text} jobs here.`
      : "No jobs yet: drop a photo to start one.";
    $("jobs-unhide").hidden = this.hidden.size === 0;
    $("clear-finished").hidden = !this.entries.some((entry) => TERMINAL.has(stateOf(entry)));
  }

  select(id) {
    this.selectedId = id;
    for (const entry of this.entries) {
      const selected = Boolean(id) && entry.id === id;
      entry.element.classList.toggle("selected", selected);
      if (selected) entry.element.setAttribute("aria-current", "true");
      else entry.element.removeAttribute("aria-current");
    }
  }

  render(entry) {
    const { element, job } = entry;
    const state = stateOf(entry);
    element.dataset.state = state;
    if (entry.id) element.dataset.jobId = entry.id;
    this.renderProgress(entry, state);
    element.querySelector(".job-state").textContent = stateText(entry, state);
    element.querySelector(".job-meta").textContent = metaText(job);
    this.renderName(entry, state);
    const failure = entry.error ?? (job?.state === "failed" || job?.state === "canceled" ? job.error : null);
    const message = element.querySelector(".job-message");
    message.textContent = failure ? friendlyError(failure.code, failure.message) : "";
    message.hidden = !failure;
    element.querySelector(".job-actions").replaceChildren(...this.actions(entry, state));
    element.classList.toggle("selected", Boolean(entry.id) && entry.id === this.selectedId);
    this.updateEmpty();
  }

  renderProgress(entry, state) {
    const progress = entry.element.querySelector(".job-progress");
    progress.hidden = TERMINAL.has(state) || state === "needs-key" || state === "upload-failed";
    if (state === "running" || state === "succeeded") {
      const reported = state === "succeeded" ? 1 : Math.min(entry.job.progress || 0, ALMOST_DONE);
      entry.shown = Math.max(entry.shown, reported);      // never backwards, whatever the polls say
      progress.value = entry.shown;
    } else if (!entry.shown) {
      progress.removeAttribute("value");                  // indeterminate while uploading or queued
    }
    entry.element.dataset.progress = String(entry.shown);
  }

  renderName(entry, state) {
    const slot = entry.element.querySelector(".job-name");
    const wanted = state === "succeeded" ? "BUTTON" : "SPAN";
    let name = slot;
    if (slot.tagName !== wanted) {
      name = document.createElement(wanted);
      name.className = "job-name";
      if (wanted === "BUTTON") {
        name.type = "button";
        name.title = "Show the 3D result";
        name.addEventListener("click", () => this.onOpen(entry.id));
      }
      slot.replaceWith(name);
    }
    name.textContent = entry.name;
  }

  actions(entry, state) {
    const buttons = [];
    const add = (label, action, title) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = `action action-${action}`;
      button.textContent = label;
      button.title = title;
      button.addEventListener("click", () => this.act(entry, action, button));
      buttons.push(button);
    };
    if (state === "upload-failed" && entry.file && entry.error.code !== "file_too_large") add("Try again", "upload", "Send this photo again");
    if (state === "queued" || state === "running") add("Cancel", "cancel", "Stop this job");
    if (state === "failed") add("Retry", "retry", "Run this photo again as a new job");
    if (entry.id && TERMINAL.has(state)) add("Delete", "delete", "Delete this job and its files from the server");
    return buttons;
  }

  async act(entry, action, button) {
    if (action === "upload") return this.onUploadAgain(entry);
    if (action === "delete" && !window.confirm(`Delete “${entry.name}” and its files from the server?`)) return;
    button.disabled = true;
    try {
      if (action === "cancel") entry.job = await cancelJob(entry.id);
      if (action === "retry") await this.retry(entry);
      if (action === "delete") {
        await deleteJob(entry.id);
        return this.drop(entry);
      }
      this.render(entry);
    } catch (error) {
      this.notify(`${entry.name}: ${friendlyError(error.code, error.message)}`);
      button.disabled = false;
    }
  }

  async retry(entry) {
    const fresh = this.add({ name: entry.name });
    try {
      this.known(fresh, await retryJob(entry.id));
    } catch (error) {
      this.drop(fresh);
      throw error;
    }
  }

  clearFinished() {
    for (const entry of this.entries.filter((e) => TERMINAL.has(stateOf(e)))) {
      if (entry.id) this.hidden.add(entry.id);
      this.drop(entry);
    }
    this.saveHidden();
  }

  unhide() {
    this.hidden.clear();
    this.saveHidden();
    this.reload();
  }

  saveHidden() {
    localStorage.setItem(HIDDEN_STORAGE, JSON.stringify([...this.hidden].slice(-MAX_HIDDEN)));
    this.updateEmpty();
  }

  async loadThumb(entry) {
    if (!entry.id || entry.thumbUrl) return;
    const img = entry.element.querySelector(".thumb");
    try {
      entry.thumbUrl = URL.createObjectURL(await fetchBlob(inputUrl(entry.id, THUMB_PX)));
    } catch {
      return;               // no stored photo (deleted inputs): the blank square stays
    }
    img.src = entry.thumbUrl;
    img.hidden = false;
    entry.element.querySelector(".thumb-blank").hidden = true;
  }
}

export function stateOf(entry) {
  if (entry.error) {
    if (entry.error.status === 401) return "needs-key";
    return entry.id ? "failed" : "upload-failed";
  }
  return entry.job?.state ?? "uploading";
}

function stateText(entry, state) {
  const job = entry.job;
  switch (state) {
    case "uploading": return "uploading…";
    case "upload-failed": return "not sent";
    case "needs-key": return "waiting for an API key";
    case "running": {
      if (job.cancel_requested) return "canceling…";
      const stage = job.stage ? `: ${job.stage.replaceAll("_", " ")}` : "";
      return `running${stage} · ${Math.floor(entry.shown * 100)} %`;
    }
    case "succeeded": return `done: ${job.faces.length} face${job.faces.length === 1 ? "" : "s"}`;
    default: return state;
  }
}

function metaText(job) {
  if (!job?.created_at) return "";
  const when = new Date(job.created_at);
  const sameDay = when.toDateString() === new Date().toDateString();
  return sameDay ? when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : when.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

function readHidden() {
  try {
    const saved = JSON.parse(localStorage.getItem(HIDDEN_STORAGE) || "[]");
    return Array.isArray(saved) ? saved.filter((id) => typeof id === "string") : [];
  } catch {
    return [];
  }
}
