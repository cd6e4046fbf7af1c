"""One option schema (shared/options.py): the API, `face3d submit`, `face3d ingest` and `face3d reconstruct` accept
the same names and bounds, each with help text naming its default, and the engine's defaults are the declared
ones. Walked from the declarations, so a new option is checked on every surface without editing this test."""
from __future__ import annotations

from typing import Any

import click
import pytest
from pydantic import ValidationError

from face3d.client.cli import ingest, submit
from face3d.shared.commands import reconstruct
from face3d.shared.engines import engine_names
from face3d.shared.engines.base import Options
from face3d.shared.options import ENGINES, OPTIONS, OptionSpec, api_options
from face3d.shared.schema import JobOptions
from tests.infra.layering import ROOT

PHOTO = str(ROOT / "examples" / "frontal.jpg")
COMMANDS: dict[str, tuple[click.Command, list[str]]] = {     # name -> (command, the arguments it needs besides)
    "submit": (submit, [PHOTO]),
    "ingest": (ingest, [str(ROOT / "examples")]),
    "reconstruct": (reconstruct, [PHOTO, "-o", "out"]),
}


def edge_values(spec: OptionSpec) -> tuple[list[Any], list[Any]]:
    """(accepted, refused) values at the edges of the declared range or choices."""
    if spec.bounds is not None:
        bounds = spec.bounds
        accepted = [value for value in (bounds.ge, bounds.le) if value is not None]
        refused = [bounds.le + 1, bounds.ge - 1 if bounds.ge is not None else bounds.gt]
        if spec.kind is float and bounds.gt is not None:
            accepted.append(bounds.gt + 0.5)
        return accepted, refused
    if spec.choices and spec.kind in (int, float):
        return list(spec.choices), [min(spec.choices) // 2, max(spec.choices) * 2]
    if spec.kind is list:
        return [",".join(spec.choices[:2])], ["nothing-like-this", f"{spec.choices[0]},nothing-like-this"]
    if spec.choices and spec.strict:
        return list(spec.choices), ["nothing-like-this"]
    return [], []


def params_of(command: click.Command) -> dict[str, click.Parameter]:
    return {param.name: param for param in command.params}


def test_the_declarations_are_complete():
    assert len({spec.name for spec in OPTIONS}) == len(OPTIONS)
    assert set(ENGINES) == set(engine_names())                      # the registry and the declared choices
    assert {spec.name for spec in api_options()} == set(JobOptions.model_fields)
    engine_defaults = Options()
    for spec in OPTIONS:
        if spec.api and spec.name not in ("engine", "webhook_url"):     # the rest reach the engine's Options
            expected = frozenset(spec.default) if spec.kind is list else spec.default
            assert getattr(engine_defaults, spec.name) == expected, spec.name   # the declared default is the engine's
    for spec in OPTIONS:
        assert spec.commands and spec.help.endswith(".") and "Default:" in spec.description(), spec.name


def test_every_command_takes_exactly_its_declared_options():
    for name, (command, _) in COMMANDS.items():
        params = params_of(command)
        for spec in OPTIONS:
            assert (spec.name in params) == (name in spec.commands), (name, spec.name)
            if spec.name in params:
                param = params[spec.name]
                assert spec.flag in param.opts, (name, spec.name, param.opts)
                assert "Default:" in (param.help or ""), (name, spec.name)
    submit_options = set(params_of(submit))
    assert {spec.name for spec in api_options()} <= submit_options   # the API client takes every API option


def test_the_api_accepts_and_refuses_the_same_values_as_every_command():
    schema = JobOptions.model_json_schema()["properties"]
    for spec in OPTIONS:
        accepted, refused = edge_values(spec)
        if spec.api:
            branch = schema[spec.name]["anyOf"][0]
            if spec.bounds is not None:
                assert branch.get("minimum", branch.get("exclusiveMinimum")) == spec.bounds.low, spec.name
                assert branch["maximum"] == spec.bounds.le and ("exclusiveMinimum" in branch) == (
                    spec.bounds.gt is not None), spec.name
            for value in accepted:
                JobOptions.model_validate({spec.name: value})
            for value in refused:
                with pytest.raises(ValidationError):
                    JobOptions.model_validate({spec.name: value})
        for command_name in spec.commands:
            command, arguments = COMMANDS[command_name]
            for value in accepted:
                assert command.make_context(command_name, [*arguments, spec.flag, str(value)]).params
            for value in refused:
                with pytest.raises(click.BadParameter):
                    command.make_context(command_name, [*arguments, spec.flag, str(value)])


def test_left_out_options_are_not_sent_and_reconstruct_fills_the_defaults():
    command, arguments = COMMANDS["submit"]
    given = command.make_context("submit", [*arguments, "--max-faces", "3", "--no-video"]).params
    from face3d.shared.options import chosen

    assert chosen(given) == {"max_faces": 3, "video": False}       # the server's defaults apply to the rest
    local = reconstruct.make_context("reconstruct", COMMANDS["reconstruct"][1]).params
    assert local["max_faces"] == Options.max_faces and local["engine"] == "cpu"
    assert local["texture_size"] == Options.texture_size and isinstance(local["texture_size"], int)
