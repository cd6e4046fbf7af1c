// Talking to the face3d API: the optional Bearer key, problem+json errors, files fetched as blobs.
const KEY_STORAGE = "face3d.apiKey";

export class ApiError extends Error {
  constructor(status, code, message, retryAfterS = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfterS = retryAfterS;
  }
}

export function apiKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

export function saveApiKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

function withAuth(headers = {}) {
  const key = apiKey();
  return key ? { ...headers, Authorization: `Bearer ${key}` } : headers;
}

async function problemOf(response, keySent) {
  let body = {};
  try {
    body = await response.json();
  } catch {
    // not problem+json (a proxy's page, object storage's XML): fall back to the status line
  }
  const message = body.detail || body.title || `${response.status} ${response.statusText}`.trim();
  const retryAfter = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
  let code = body.code || `http_${response.status}`;
  if (response.status === 401) code = keySent ? "key_refused" : "unauthorized";
  return new ApiError(response.status, code, message, Number.isNaN(retryAfter) ? null : retryAfter);
}

// Artifact URLs may answer with a redirect to presigned object storage; fetch follows it (the browser drops the
// Authorization header on the cross-origin hop, and the presigned URL needs none).
async function call(url, init = {}) {
  let response;
  try {
    response = await fetch(url, { ...init, headers: withAuth(init.headers) });
  } catch {
    throw new ApiError(0, "network", "The server could not be reached (or the file's storage refused the browser).");
  }
  if (!response.ok) throw await problemOf(response, Boolean(apiKey()));
  return response;
}

export async function submitPhoto(file, { video, maxFaces }) {
  const form = new FormData();
  form.append("image", file, file.name);
  form.append("video", video ? "true" : "false");
  if (maxFaces) form.append("max_faces", String(maxFaces));
  const response = await call("v1/jobs", { method: "POST", body: form });
  return response.json();
}

const jobPath = (id, tail = "") => `v1/jobs/${encodeURIComponent(id)}${tail}`;

export async function getJob(id) {
  return (await call(jobPath(id))).json();
}

export async function listJobs({ cursor = null, state = "", limit = 20 } = {}) {
  const query = new URLSearchParams({ limit: String(limit) });
  if (cursor) query.set("cursor", cursor);
  if (state) query.set("state", state);
  return (await call(`v1/jobs?${query}`)).json();
}

export async function cancelJob(id) {
  return (await call(jobPath(id, "/cancel"), { method: "POST" })).json();
}

export async function retryJob(id) {
  return (await call(jobPath(id, "/retry"), { method: "POST" })).json();
}

export async function deleteJob(id) {
  await call(jobPath(id), { method: "DELETE" });
}

export const inputUrl = (id, maxSide = null) => jobPath(id, maxSide ? `/input?max_side=${maxSide}` : "/input");
export const archiveUrl = (id) => jobPath(id, "/archive");

// Public: what the server refuses, so a photo too large is refused here before it is sent.
export async function getLimits() {
  try {
    return await (await fetch("v1/limits")).json();
  } catch {
    return {};
  }
}

export async function fetchBlob(url) {
  const response = await call(url);
  return response.blob();
}
