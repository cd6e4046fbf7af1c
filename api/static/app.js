// The page: drop or pick photos, follow the jobs (listed from the server), open one at its own URL (#/jobs/<id>).
import { apiKey, getJob, getLimits, saveApiKey, submitPhoto } from "./api.js";
import { JobList } from "./jobs.js";
import { formatBytes, friendlyError, tooLarge } from "./messages.js";
import { ResultView } from "./result.js";

const POLL_MS = 1000;
const POLL_MS_PER_JOB = 250;      // many running jobs: poll each less often (reads are rate-limited per key)
const POLL_BACKOFF_MS = 10_000;
const UPLOAD_ATTEMPTS = 5;
const JOB_ROUTE = /^#\/jobs\/([\w-]+)$/;
const PHONE = window.matchMedia("(max-width: 760px)");

const $ = (id) => document.getElementById(id);
const waitingForKey = [];    // entries whose upload got 401: sent again once a key is saved
let limits = {};

const result = new ResultView(notify);
const jobList = new JobList({
  onOpen: (id) => openRoute(id), onFinished, onAuthError: askForKey, onUploadAgain: (entry) => upload(entry),
  notify,
});

// ---------------------------------------------------------------- notices and the API key

function notify(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

function askForKey(error) {
  notify(friendlyError(error?.code === "key_refused" ? "key_refused" : "unauthorized"));
  $("api-key").focus();
}

async function onKeySaved(event) {
  event.preventDefault();
  saveApiKey($("api-key").value.trim());
  notify("");
  for (const entry of waitingForKey.splice(0)) upload(entry);
  await jobList.reload();
  if (currentRoute()) openJob(currentRoute());
}

// ---------------------------------------------------------------- choosing and sending photos

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
  const pending = [...fileList].map((file) => jobList.add({ name: file.name, file, options }));
  for (const entry of pending) await upload(entry);
}

async function upload(entry) {
  const { file, options } = entry;
  if (limits.max_upload_bytes && file.size > limits.max_upload_bytes) {
    entry.error = { code: "file_too_large", message: tooLarge(file.size, limits.max_upload_bytes) };
    return jobList.render(entry);
  }
  for (let attempt = 1; attempt <= UPLOAD_ATTEMPTS; attempt += 1) {
    entry.error = null;
    jobList.render(entry);
    try {
      return jobList.known(entry, await submitPhoto(file, options));
    } catch (error) {
      entry.error = { code: error.code, message: error.message, status: error.status };
      jobList.render(entry);
      if (error.status === 401) {
        waitingForKey.push(entry);
        return askForKey(error);
      }
      if (error.code !== "rate_limited" || attempt === UPLOAD_ATTEMPTS) return;
      await sleep((error.retryAfterS ?? 5) * 1000);    // the following photos wait too: uploads go one by one
    }
  }
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

// ---------------------------------------------------------------- following jobs

function onFinished(job) {
  if (result.jobId !== null) return;
  openRoute(job.id, { scroll: PHONE.matches });       // on a phone the result is below the list: bring it up
}

async function pollForever() {
  const active = jobList.active();
  const failures = await Promise.all(active.map((entry) => jobList.refresh(entry)));
  const limited = failures.includes("rate_limited");
  setTimeout(pollForever, limited ? POLL_BACKOFF_MS : Math.max(POLL_MS, active.length * POLL_MS_PER_JOB));
}

// ---------------------------------------------------------------- one URL per job

const currentRoute = () => JOB_ROUTE.exec(window.location.hash)?.[1] ?? null;
let scrollNext = false;

function openRoute(id, { scroll = true } = {}) {
  scrollNext = scroll;
  if (currentRoute() === id) openJob(id);
  else window.location.hash = `#/jobs/${id}`;
}

async function openJob(id) {
  const scroll = scrollNext;
  scrollNext = false;
  jobList.select(id);
  let job;
  try {
    job = jobList.byId(id)?.job?.state === "succeeded" ? jobList.byId(id).job : await getJob(id);
  } catch (error) {
    if (error.status === 401) return askForKey(error);
    return notify(`Job ${id}: ${friendlyError(error.code, error.message)}`);
  }
  if (!jobList.byId(id)) jobList.add({ id, job, name: job.input_name || id });
  jobList.select(id);
  if (job.state !== "succeeded") {
    return notify(`“${job.input_name || id}” is ${job.state}: its result shows here once it is done.`);
  }
  result.show(job, { focus: scroll });
}

// ---------------------------------------------------------------- start

async function start() {
  $("api-key").value = apiKey();
  $("key-form").addEventListener("submit", onKeySaved);
  setUpDropZone();
  window.addEventListener("hashchange", () => currentRoute() && openJob(currentRoute()));
  limits = await getLimits();
  if (limits.max_upload_bytes) $("upload-limit").textContent = `up to ${formatBytes(limits.max_upload_bytes)} each`;
  await jobList.loadPage();
  if (currentRoute()) await openJob(currentRoute());
  pollForever();
  document.documentElement.dataset.ready = "true";
}

start();
