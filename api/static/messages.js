// Plain words for the API's stable error codes; the server's own message is shown beside them.
const FRIENDLY = {
  no_face_detected: "No face found in this photo.",
  invalid_image: "This file could not be read as a photo.",
  image_too_large: "This photo has too many pixels.",
  payload_too_large: "This file is too large to upload.",
  unsupported_media_type: "This file is not a supported image (use JPEG, PNG, WebP, GIF, BMP or TIFF).",
  validation_failed: "An option is not valid.",
  invalid_request: "The server did not accept the request.",
  unauthorized: "This server needs a valid API key.",
  rate_limited: "Too many requests: wait a moment and try again.",
  timeout: "The reconstruction took too long.",
  worker_lost: "The worker stopped while processing this photo.",
  engine_unavailable: "The reconstruction engine is not available right now.",
  engine_error: "The reconstruction engine failed on this photo.",
  storage_unavailable: "File storage is not available right now.",
  broker_unavailable: "The job queue is not available right now.",
  database_unavailable: "The database is not available right now.",
  canceled: "The job was canceled.",
  not_found: "This job no longer exists.",
  network: "The server could not be reached.",
};

export function friendlyError(code, message) {
  const friendly = FRIENDLY[code] || "Something went wrong.";
  return message && message !== friendly ? `${friendly} (${message})` : friendly;
}

export function formatBytes(size) {
  if (size == null) return "";
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${(size / 1024).toFixed(0)} KB`;
  return `${(size / 1024 / 1024).toFixed(1)} MB`;
}
