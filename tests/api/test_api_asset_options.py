"""The asset options through the API: the output names and units the CLI takes, stored for the worker; usdz refused
with the install hint where the server cannot write it."""
from __future__ import annotations

from face3d.shared.engines.base import Options
from tests.api.fakes import assert_problem, post_photo


def test_outputs_units_solid_and_height_are_stored_for_the_engine(client, obama_bytes, queue):
    response = post_photo(client, obama_bytes, options={"outputs": ["stl", "ply"], "units": "mm", "solid": True,
                                                        "print_height_mm": 120})
    assert response.status_code == 202, response.get_json()
    options = response.get_json()["options"]
    assert options["outputs"] == ["json", "stl", "ply"] and options["units"] == "mm"
    engine = Options(**{k: v for k, v in options.items() if k != "max_pixels"})
    assert engine.outputs == {"json", "stl", "ply"} and engine.solid and engine.print_height_mm == 120


def test_outputs_as_a_form_field_take_the_cli_spelling(client, obama_bytes):
    response = post_photo(client, obama_bytes, outputs="json,3mf,glb")
    assert response.status_code == 202
    assert response.get_json()["options"]["outputs"] == ["json", "glb", "3mf"]


def test_unknown_outputs_and_units_are_422(client, obama_bytes):
    assert_problem(post_photo(client, obama_bytes, options={"outputs": ["fbx"]}), 422, "validation_failed")
    assert_problem(post_photo(client, obama_bytes, options={"units": "cm"}), 422, "validation_failed")
    assert_problem(post_photo(client, obama_bytes, options={"print_height_mm": 2}), 422, "validation_failed")


def test_usdz_without_usd_core_is_refused_with_the_hint(client, obama_bytes, monkeypatch):
    import face3d.shared.artifacts.usdz as usdz

    monkeypatch.setattr(usdz, "usdz_available", lambda: False)       # as on a server installed without the extra
    response = post_photo(client, obama_bytes, options={"outputs": ["usdz"]})
    assert_problem(response, 422, "validation_failed")
    assert "face3d[usd]" in response.get_json()["detail"]
