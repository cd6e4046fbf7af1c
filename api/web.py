"""The web page at / (drop photos, follow the jobs, turn each 3D face) and its files under /assets/.

Everything the page needs ships in api/static (three.js is vendored by web/build.mjs), so it works offline.
"""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, send_from_directory

bp = Blueprint("web", __name__, static_folder="static", static_url_path="/assets")

# Scripts and styles only from this server (no inline code); files arrive as blob: URLs. connect-src stays open:
# artifact downloads may redirect to the object storage's presigned URLs, whose origin the page cannot know.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' blob: data:",
    "media-src 'self' blob:",
    "connect-src * blob:",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
])


@bp.get("/")
def index() -> Response:
    if _prefers_json():
        return jsonify({"service": "face3d", "openapi": "/v1/openapi.json", "jobs": "/v1/jobs"})
    response = send_from_directory(bp.static_folder, "index.html", max_age=0)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _prefers_json() -> bool:
    """API clients that ask for JSON keep getting the service summary this route returned before the page."""
    accept = request.accept_mimetypes
    return accept["application/json"] > accept["text/html"]
