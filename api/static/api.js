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

async function problemOf(response) {
  let body = {};
  try {
    body = await response.json();
  } catch {
    // not problem+json (a proxy's page, object storage's XML): fall back to the status line
  }
  const message = body.detail || body.title || `${response.status} ${response.statusText}`.trim();
  const retryAfter = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
  return new ApiError(response.status, body.code || `http_${response.status}`, message,
    Number.isNaN(retryAfter) ? null : retryAfter);
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
  if (!response.ok) throw await problemOf(response);
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

export async function getJob(id) {
  const response = await call(`v1/jobs/${encodeURIComponent(id)}`);
  return response.json();
}

export async function fetchBlob(url) {
  const response = await call(url);
  return response.blob();
}
