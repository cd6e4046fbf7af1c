"""The reconstruction options, declared once: name, type, bounds or choices, default and help text.

Every surface is built from this table: the API's JobOptions (shared/schema.py, so also the OpenAPI document),
`face3d submit` and `face3d ingest` (client/cli.py) and `face3d reconstruct` (shared/commands.py) through
``click_options``, and the engine's defaults (shared/engines/base.py Options). A new option is one more OptionSpec
here; ``commands`` says which CLI commands take it and ``api`` whether the HTTP API does.

It imports neither the engine nor a web framework (the client reads it through shared.schema); click is imported
only when a command builds its options.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import click

SUBMIT, INGEST, RECONSTRUCT = "submit", "ingest", "reconstruct"
CLIENT_COMMANDS = frozenset({SUBMIT, INGEST})
ALL_COMMANDS = frozenset({SUBMIT, INGEST, RECONSTRUCT})

TEXTURE_SIZES = (256, 512, 1024, 2048, 4096)
# What a reconstruction can write (result.json always), and what it writes when not told.
OUTPUTS = ("json", "obj", "glb", "vis", "video", "gif", "stl", "3mf", "ply", "usdz")
# gif (turntable.gif beside the MP4) is asked for: its palette and LZW cost more than the MP4 and the render together.
DEFAULT_OUTPUTS = ("json", "obj", "glb", "vis", "video")
UNITS = ("m", "mm")                 # of OBJ, PLY and STL files (glTF and USD are always in metres)
ENGINES = ("cpu", "hrn")            # shared/engines ENGINES maps each name to its class


@dataclass(frozen=True)
class Bounds:
    """The accepted range of a numeric option (pydantic's names)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None

    def limits(self) -> dict[str, float]:
        return {name: value for name, value in dataclasses.asdict(self).items() if value is not None}

    @property
    def low(self) -> float | None:
        return self.ge if self.ge is not None else self.gt


@dataclass(frozen=True)
class OptionSpec:
    name: str                               # the API field; the CLI flag is --name-with-dashes
    kind: type                              # int, float, bool, str, or list (a list or comma-separated string)
    default: Any                            # the engine's default; None: decided later (see default_help)
    help: str                               # one sentence, without the default (added where shown)
    bounds: Bounds | None = None
    choices: tuple[Any, ...] | None = None
    strict: bool = True                     # False: choices only documented here, checked by the server (engine)
    always: tuple[Any, ...] = ()            # list options: values always included (outputs: json)
    default_help: str | None = None         # what a None default means, in words
    max_length: int | None = None
    api: bool = True                        # a field of JobOptions (POST /v1/jobs, batches)
    commands: frozenset[str] = ALL_COMMANDS
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def accepted(self) -> str:
        """The accepted values in words, e.g. "1-50" or "256, 512, 1024, 2048 or 4096"."""
        if self.choices:
            words = [str(choice) for choice in self.choices]
            return ", ".join(words[:-1]) + " or " + words[-1] if self.kind is not list else ",".join(words)
        if self.bounds is None:
            return ""
        if self.bounds.ge is not None:
            return f"{self.bounds.ge:g}–{self.bounds.le:g}"
        return f"above {self.bounds.gt:g}, up to {self.bounds.le:g}"

    def default_text(self) -> str:
        if self.default is None:
            return self.default_help or "none"
        if self.kind is bool:
            return "on" if self.default else "off"
        if self.kind is list:
            return ",".join(self.default)
        return f"{self.default:g}" if isinstance(self.default, float) else str(self.default)

    def description(self, *, ranges: bool = True, default: str | None = None) -> str:
        """The help text with the accepted values and the default, as the API documents it. ``ranges=False``
        leaves numeric ranges out (click prints them itself); ``default`` replaces the shown default."""
        shown = self.accepted() if ranges or self.bounds is None else ""
        accepted = f" Accepted: {shown}." if shown else ""
        return f"{self.help}{accepted} Default: {default or self.default_text()}."


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("engine", str, None, "Engine: cpu (any CPU) or hrn (a GPU worker).", choices=ENGINES, strict=False,
               default_help="the server's default", metavar="NAME"),
    OptionSpec("max_faces", int, 20, "Reconstruct at most this many faces per photo.", Bounds(ge=1, le=50),
               metavar="N"),
    OptionSpec("video", bool, True, "Render the turntable video (turntable.mp4, and turntable.gif with the gif "
               "output)."),
    OptionSpec("face_videos", bool, True, "With video and two or more faces: one turntable per face too "
               "(turntable_face<i>.mp4, i = the face index), beside the tiled clip."),
    OptionSpec("frames", int, 30, "Turntable frame count.", Bounds(ge=1, le=360), metavar="N"),
    OptionSpec("sweep_degrees", float, 60.0, "Total yaw sweep of the turntable (60 = +-30 degrees, 360 = a full "
               "turn).", Bounds(gt=0, le=360), metavar="DEG"),
    OptionSpec("texture_size", int, 1024, "UV atlas side in pixels.", choices=TEXTURE_SIZES, metavar="N"),
    OptionSpec("render_size", int, 512, "Turntable frame side in pixels.", Bounds(ge=64, le=2048), metavar="N"),
    OptionSpec("outputs", list, DEFAULT_OUTPUTS, "What to write, comma-separated; result.json always. 'json' alone "
               "(landmarks and pose for a data set) skips the textures too.", choices=OUTPUTS, always=("json",),
               metavar="LIST"),
    OptionSpec("units", str, None, "Length unit of OBJ, PLY and STL files (3MF is always mm, GLB and USDZ m).",
               choices=UNITS, default_help="mm for closed solids, m for the open shell", metavar="UNIT"),
    OptionSpec("solid", bool, False, "Close the OBJ and PLY meshes into a solid too (STL and 3MF always are)."),
    OptionSpec("print_height_mm", float, None, "Height of the closed solids (STL, 3MF, solid OBJ / PLY) in mm.",
               Bounds(ge=10, le=1000), default_help="life size", metavar="MM"),
    OptionSpec("webhook_url", str, None, "POSTed a signed event when the job finishes (Standard Webhooks); "
               "public http(s) hosts only.", max_length=2000, commands=frozenset({SUBMIT}), metavar="URL"),
)
BY_NAME: dict[str, OptionSpec] = {spec.name: spec for spec in OPTIONS}
ENGINE_DEFAULTS: dict[str, Any] = {spec.name: spec.default for spec in OPTIONS if spec.default is not None}


def api_options() -> tuple[OptionSpec, ...]:
    return tuple(spec for spec in OPTIONS if spec.api)


def command_options(command: str) -> tuple[OptionSpec, ...]:
    return tuple(spec for spec in OPTIONS if command in spec.commands)


# ---------------------------------------------------------------- the API's fields (pydantic)


def pydantic_field(spec: OptionSpec) -> tuple[Any, Any]:
    """(annotation, FieldInfo) of the JobOptions field: optional, None meaning the engine's default."""
    from pydantic import Field

    kind: Any = spec.kind
    if spec.kind is list:
        kind = _list_of(spec)
    elif spec.choices and spec.strict:
        kind = _one_of(spec)
    limits = {**(spec.bounds.limits() if spec.bounds else {}),
              **({"max_length": spec.max_length} if spec.max_length else {})}
    return kind | None, Field(None, description=spec.description(), **limits)


def _one_of(spec: OptionSpec) -> Any:
    """``spec.kind`` limited to ``spec.choices`` (a form field's "512" still converts, as with any int field)."""
    from typing import Annotated

    from pydantic import AfterValidator, WithJsonSchema

    def check(value: Any) -> Any:
        if value not in spec.choices:
            raise ValueError(f"must be one of {spec.accepted()}")
        return value

    json_type = {int: "integer", float: "number", str: "string"}[spec.kind]
    return Annotated[spec.kind, AfterValidator(check), WithJsonSchema({"type": json_type,
                                                                      "enum": list(spec.choices)})]


def _list_of(spec: OptionSpec) -> Any:
    """A list of ``spec.choices``, sent as a list or a comma-separated string (a form field)."""
    from typing import Annotated

    from pydantic import BeforeValidator

    def normalise(value: Any) -> Any:
        return list(normalised_list(spec, value)) if isinstance(value, (str, list, tuple)) else value

    return Annotated[list[str], BeforeValidator(normalise)]


def normalised_list(spec: OptionSpec, value: str | list[Any] | tuple[Any, ...]) -> tuple[str, ...]:
    """The names of a list option: split, checked against its choices, with ``always`` added, in the choices'
    order. ValueError names the unknown ones."""
    names = [name.strip() for name in value.split(",")] if isinstance(value, str) else [str(v) for v in value]
    names = [name for name in names if name]
    unknown = sorted(set(names) - set(spec.choices or ()))
    if unknown or not names:
        raise ValueError(f"{', '.join(unknown) or 'nothing'}: choose from {','.join(spec.choices or ())}")
    wanted = set(names) | set(spec.always)
    return tuple(choice for choice in spec.choices or () if choice in wanted)


# ---------------------------------------------------------------- the CLI's options (click)


def click_options(command: str, *, server_defaults: bool) -> Callable[[Callable], Callable]:
    """A decorator adding every option of ``command``. ``server_defaults``: an option left out is not sent, so the
    server's (the engine's) default applies; the help still shows that default. Otherwise the default is filled in
    here (`face3d reconstruct`, which runs the engine itself)."""

    def decorate(function: Callable) -> Callable:
        for spec in reversed(command_options(command)):
            function = _click_option(spec, server_defaults)(function)
        return function

    return decorate


def _click_option(spec: OptionSpec, server_defaults: bool) -> Callable[[Callable], Callable]:
    import click

    default = None if server_defaults else _local_default(spec)
    shown = None if server_defaults or default is None else spec.default_text() if spec.strict else default
    common: dict[str, Any] = {"default": default, "help": spec.description(ranges=False, default=shown)}
    if spec.kind is bool:
        return click.option(f"{spec.flag}/--no-{spec.flag[2:]}", spec.name, **common)
    return click.option(spec.flag, spec.name, type=_click_type(spec, server_defaults), metavar=spec.metavar,
                        callback=_parse_list if spec.kind is list else None, **common)


def _local_default(spec: OptionSpec) -> Any:
    if not spec.strict:             # engine: reconstruct runs one here
        return spec.choices[0] if spec.choices else None
    return ",".join(spec.default) if spec.kind is list else spec.default


def _click_type(spec: OptionSpec, server_defaults: bool) -> "click.ParamType":
    import click

    if spec.kind is list:
        return click.STRING
    if spec.choices:
        # not strict (engine): the server checks the name of a job it receives; reconstruct loads the engine itself
        if not spec.strict and server_defaults:
            return click.STRING
        return _choice_of(spec.choices, spec.kind)
    if spec.bounds is not None:
        range_type = {int: click.IntRange, float: click.FloatRange}[spec.kind]
        return range_type(spec.bounds.low, spec.bounds.le, min_open=spec.bounds.gt is not None)
    return {int: click.INT, float: click.FLOAT, str: click.STRING}[spec.kind]


def _choice_of(choices: tuple[Any, ...], kind: type) -> "click.ParamType":
    """click.Choice over ``choices``, converted to ``kind`` (texture sizes are ints)."""
    import click

    class _Choice(click.Choice):
        def convert(self, value: Any, param: Any, ctx: Any) -> Any:
            return kind(super().convert(str(value), param, ctx))

    return _Choice([str(choice) for choice in choices])


def _parse_list(ctx: "click.Context", param: "click.Parameter", value: str | None) -> tuple[str, ...] | None:
    import click

    if value is None:
        return None
    try:
        return normalised_list(BY_NAME[param.name or ""], value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def chosen(values: dict[str, Any]) -> dict[str, Any]:
    """The options a command was given explicitly (None = left to the server's default), by API name."""
    return {name: value for name, value in values.items() if name in BY_NAME and value is not None}
