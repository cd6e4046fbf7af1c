"""The pure parts of ingestion: sources, the resumable results file, unique names, canonical options."""
from __future__ import annotations

import json
import zipfile

import pytest

from face3d.shared.schema import UniqueNames
from face3d.shared.errors import Face3dError
from face3d.client.ingest import ResultsFile
from face3d.client.sources import iter_items
from face3d.shared.jobs import canonical_options


def test_results_file_cuts_a_torn_last_line_and_knows_finished_names(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text(json.dumps({"name": "a.jpg", "state": "succeeded"}) + "\n" + '{"name": "b.j')
    results = ResultsFile(path)
    assert set(results.lines) == {"a.jpg"}
    results.write({"name": "b.jpg", "state": "failed"})
    results.close()
    assert [json.loads(line)["name"] for line in path.read_text().splitlines()] == ["a.jpg", "b.jpg"]


def test_manifest_items_paths_urls_and_broken_lines(tmp_path):
    (tmp_path / "p.jpg").write_bytes(b"\xff\xd8\xffdata")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"path": "p.jpg"}\n{"url": "s3://b/x/y.png", "name": "y"}\nnot json\n\n{"other": 1}\n')
    items = list(iter_items(str(manifest)))
    assert [item.name for item in items] == ["p.jpg", "y", "line 3", "line 5"]
    assert items[0].read() == b"\xff\xd8\xffdata" and items[1].url == "s3://b/x/y.png" and items[1].read is None
    with pytest.raises(Face3dError, match="not valid JSON"):
        items[2].read()


JPEG = b"\xff\xd8\xff\xe0 not decoded here"


def test_folder_and_zip_items_skip_hidden_system_and_non_image_files(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "a.jpg").write_bytes(JPEG)
    (tmp_path / "d" / ".hidden.jpg").write_bytes(JPEG)
    (tmp_path / "d" / "README.md").write_text("# not a photo")
    (tmp_path / "d" / "fake.jpg").write_text("<html>named like a photo</html>")
    skipped: list[str] = []
    assert [item.name for item in iter_items(str(tmp_path / "d"), skipped)] == ["sub/a.jpg"]
    assert skipped == ["README.md", "fake.jpg"]                 # by their bytes, not their names
    with zipfile.ZipFile(tmp_path / "z.zip", "w") as archive:
        archive.writestr("x/a.jpg", JPEG)
        archive.writestr("__MACOSX/x/._a.jpg", JPEG)
        archive.writestr("notes.txt", b"text")
    skipped = []
    items = list(iter_items(str(tmp_path / "z.zip"), skipped))
    assert [(item.name, item.read()) for item in items] == [("x/a.jpg", JPEG)] and skipped == ["notes.txt"]
    with pytest.raises(Face3dError):
        list(iter_items(str(tmp_path / "missing")))


def test_unique_names_and_canonical_options():
    names = UniqueNames()
    assert [names(n) for n in ("a.jpg", "a.jpg", "a.jpg", "b")] == ["a.jpg", "a~2.jpg", "a~3.jpg", "b"]
    assert canonical_options({}) == canonical_options({"video": True})
    assert canonical_options({"video": False}) != canonical_options({})
