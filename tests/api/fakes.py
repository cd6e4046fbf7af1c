"""Helpers of the API tests: a fake worker that moves a job through the same verbs a real one uses, a multipart
submit, the problem+json check, and a live HTTP server."""
from __future__ import annotations

from typing import Any

from face3d.shared import jobs
from face3d.shared.storage import content_type_for, output_key

FAKE_FACE = {"index": 0, "bbox": [10.0, 20.0, 110.0, 140.0], "score": 0.97, "yaw": 3.5, "pitch": -1.0,
             "roll": 0.5, "warnings": []}


def finish_job(sf: Any, storage: Any, job_id: str, files: dict[str, bytes] | None = None, *,
               running: bool = False, **result_fields: Any) -> None:
    """queued -> running -> succeeded (``running``: it already runs), with ``files`` stored as the job's artifacts;
    ``result_fields`` replace parts of the result (faces, warnings)."""
    files = files if files is not None else {"result.json": b'{"faces": []}', "face_0.obj": b"v 0 0 0\n"}
    assert running or jobs.mark_running(sf, job_id, "fake-worker")
    artifacts = []
    for name, data in files.items():
        key = output_key(job_id, name)
        storage.put_bytes(key, data, content_type=content_type_for(name))
        artifacts.append({"name": name, "key": key, "size": len(data), "content_type": content_type_for(name)})
    result = {"faces": [FAKE_FACE], "artifacts": artifacts, "warnings": [], "timings_ms": {"total": 12.5},
              **result_fields}
    assert jobs.mark_succeeded(sf, job_id, result)


def post_photo(client: Any, data: bytes, *, options: Any = None,
               headers: dict[str, str] | None = None, name: str = "photo.jpg", **fields: Any) -> Any:
    """POST /v1/jobs through the Flask test client, as a multipart form."""
    import io
    import json

    form: dict[str, Any] = {"image": (io.BytesIO(data), name), **fields}
    if options is not None:
        form["options"] = json.dumps(options)
    return client.post("/v1/jobs", data=form, headers=headers or {}, content_type="multipart/form-data")


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """The one error shape: RFC 9457 problem+json with our stable code."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert body["status"] == status
    assert body["code"] == code
    assert body["title"] and body["type"].endswith(code)
    assert "Traceback" not in response.get_data(as_text=True)
    return body


class LiveServer:
    """A WSGI app served over real HTTP from a thread on a free local port (``with LiveServer(app) as url``)."""

    def __init__(self, app: Any, host: str = "127.0.0.1") -> None:
        from werkzeug.serving import make_server

        self.server = make_server(host, 0, app, threaded=True)
        self.url = f"http://{host}:{self.server.server_port}"

    def __enter__(self) -> str:
        import threading

        self.thread = threading.Thread(target=self.server.serve_forever, name="live-api", daemon=True)
        self.thread.start()
        return self.url

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
