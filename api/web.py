"""The web page at / (drop photos, follow the jobs, turn each 3D face) and its files under /assets/.

Everything the page needs ships in api/static (three.js is vendored by web/build.mjs), so it works offline.
"""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, send_from_directory
from pydantic import BaseModel, Field

from face3d.api.services import services

class Limits(BaseModel):
    """What the server refuses, so a client checks a photo before sending it (public: no key needed)."""

    max_upload_bytes: int = Field(description="Largest accepted upload (MAX_UPLOAD_BYTES).")
    max_pixels: int = Field(description="Largest decoded image (MAX_PIXELS).")
    auth_required: bool = Field(description="Whether /v1 requests need an API key.")


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


@bp.get("/v1/limits")
def limits() -> Response:
    settings = services().settings
    body = Limits(max_upload_bytes=settings.max_upload_bytes, max_pixels=settings.max_pixels,
                  auth_required=settings.auth_mode != "off")
    return Response(body.model_dump_json(), mimetype="application/json")


def _prefers_json() -> bool:
    """API clients that ask for JSON keep getting the service summary this route returned before the page."""
    accept = request.accept_mimetypes
    return accept["application/json"] > accept["text/html"]
