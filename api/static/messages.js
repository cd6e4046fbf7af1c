// Plain words for the API's stable error codes and the engine's warnings: one sentence each.
const FRIENDLY = {
  no_face_detected: "No face found in this photo.",
  invalid_image: "This file could not be read as a photo.",
  image_too_large: "This photo has too many pixels.",
  payload_too_large: "This file is too large to upload.",
  unsupported_media_type: "This file is not a supported image: use JPEG, PNG, WebP, GIF, BMP or TIFF.",
  validation_failed: "An option is not valid.",
  invalid_request: "The server did not accept the request.",
  unauthorized: "This server needs an API key: enter it above and press “Save key”.",
  key_refused: "This key was refused: check it, then save it again.",
  rate_limited: "Too many requests: wait a moment and try again.",
  too_many_active_jobs: "Too many jobs are running for this key: wait for one to finish.",
  timeout: "The reconstruction took too long.",
  worker_lost: "The worker stopped while processing this photo.",
  engine_unavailable: "The reconstruction engine is not available right now.",
  engine_error: "The reconstruction engine failed on this photo.",
  storage_unavailable: "File storage is not available right now.",
  broker_unavailable: "The job queue is not available right now.",
  database_unavailable: "The database is not available right now.",
  canceled: "The job was canceled.",
  conflict: "The job cannot do that in its current state.",
  not_found: "This job no longer exists.",
  network: "The server could not be reached.",
};
// Codes whose server message adds something the plain sentence cannot know (which option, which engine error).
const WITH_DETAIL = new Set(["validation_failed", "invalid_request", "engine_error", "conflict"]);

export function friendlyError(code, message) {
  const friendly = FRIENDLY[code];
  if (!friendly) return message || "Something went wrong.";
  return WITH_DETAIL.has(code) && message && message !== friendly ? `${friendly} (${message})` : friendly;
}

export function tooLarge(size, limit) {
  return `This file is ${formatBytes(size)}; the limit is ${formatBytes(limit)}.`;
}

export function formatBytes(size) {
  if (size == null) return "";
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${(size / 1024).toFixed(0)} KB`;
  return `${(size / 1024 / 1024).toFixed(1).replace(/\.0$/, "")} MB`;      // "20 MB", "2.4 MB"
}

// What each engine warning means for the person looking at the face; null: not worth showing there.
const MIRRORED_MIN_YAW = 25;   // a frontal face always borrows some colour from its mirror image; a turned one shows it
const WARNINGS = {
  small_face: () => "small in the photo: little detail",
  face_cut_by_edge: () => "cut by the photo's edge",
  extreme_yaw: () => "strongly turned: the far side is guessed",
  occluded: () => "partly covered: the hidden part is filled in",
  texture_mirrored: (face) => (Math.abs(face.yaw) >= MIRRORED_MIN_YAW ? "far side coloured from the near side" : null),
};

export function faceNotes(face) {
  return (face.warnings || []).map((code) => (WARNINGS[code] ? WARNINGS[code](face) : code.replaceAll("_", " ")))
    .filter(Boolean);
}

export const SCORE_HELP = "Detection confidence from 0 to 1: how sure the face finder is that this is a face "
  + "(not a measure of the 3D quality).";
