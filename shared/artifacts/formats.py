"""Per-face files for printers, point/mesh tools and AR, beside the OBJ and GLB (shared/artifacts/meshes.py):

- face_<i>.stl and face_<i>.3mf: the face closed into a solid (shared/artifacts/solid.py), millimetres, life size
  unless ``print_height_mm`` is asked for; 3MF declares its unit in the file, STL cannot (``units`` picks m or mm);
- face_<i>.ply: the mesh with a colour per vertex (sampled from the texture), binary; closed like the STL with
  ``solid`` (the added back and wall dark grey);
Lengths: ``units`` (m or mm) where given; else closed solids in millimetres, open shells in metres.
- face_<i>.usdz: shared/artifacts/usdz.py (metres, as glTF).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import trimesh
from trimesh.exchange.ply import export_ply
from trimesh.exchange.stl import export_stl
from trimesh.exchange.threemf import export_3MF

from face3d.shared.artifacts.solid import Relief, relief
from face3d.shared.engines.base import Face, Options

UNIT_SCALE = {"m": 1.0, "mm": 1000.0}       # file units per metre
BACK_RGB = (38, 38, 38)                     # the added back and wall of a solid: dark, never mistaken for skin
PRINTABLE = ("stl", "3mf")


def units_of(output: str, options: Options) -> str:
    """The length unit of one output: 3MF always millimetres (its file says so); else ``units``, or millimetres for
    a closed solid (STL; OBJ and PLY with ``solid``) and metres for the open shell."""
    if output == "3mf":
        return "mm"
    return options.units or ("mm" if output in PRINTABLE or options.solid else "m")


def solid_of(face: Face, options: Options, units: str) -> Relief:
    """The face's relief (life size or ``print_height_mm`` high) in ``units``."""
    solid = relief(face.vertices, face.triangles, options.print_height_mm)
    return Relief(solid.vertices * (UNIT_SCALE[units] / 1000.0), solid.triangles, solid.face_vertices,
                  solid.face_triangles)


def _printable(face: Face, options: Options, output: str) -> trimesh.Trimesh:
    solid = solid_of(face, options, units_of(output, options))
    mesh = trimesh.Trimesh(solid.vertices, solid.triangles, process=False)
    mesh.metadata["name"] = f"face3d face {face.index}"
    return mesh


def vertex_colours(uvs: np.ndarray, texture: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 the texture's colour at each vertex's UV (bilinear; v = 0 at the texture's bottom)."""
    height, width = texture.shape[:2]
    x = (uvs[:, 0] * width - 0.5).astype(np.float32)[:, None]
    y = ((1.0 - uvs[:, 1]) * height - 0.5).astype(np.float32)[:, None]
    sampled = cv2.remap(np.ascontiguousarray(texture[:, :, :3]), x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return sampled.reshape(-1, 3)


def ply_bytes(face: Face, texture: np.ndarray, options: Options) -> bytes:
    units = units_of("ply", options)
    colours = vertex_colours(face.uvs, texture)
    if options.solid:
        solid = solid_of(face, options, units)
        vertices, triangles = solid.vertices, solid.triangles
        colours = np.vstack([colours, np.tile(BACK_RGB, (len(vertices) - solid.face_vertices, 1))])
    else:
        vertices, triangles = np.asarray(face.vertices, np.float64) * UNIT_SCALE[units], face.triangles
    alpha = np.full((len(colours), 1), 255, np.uint8)
    mesh = trimesh.Trimesh(vertices, triangles, vertex_colors=np.hstack([colours, alpha]), process=False)
    data = export_ply(mesh, encoding="binary", vertex_normal=False)
    magic, encoding, rest = data.split(b"\n", 2)
    return b"\n".join([magic, encoding, f"comment face3d face {face.index}; units: {units}".encode(), rest])


def stl_bytes(face: Face, options: Options) -> bytes:
    data = bytearray(export_stl(_printable(face, options, "stl")))
    data[:80] = f"face3d face {face.index}; units: {units_of('stl', options)}".encode().ljust(80, b" ")
    return bytes(data)


def threemf_bytes(face: Face, options: Options) -> bytes:
    return export_3MF(_printable(face, options, "3mf"))


def format_file_names(index: int) -> dict[str, str]:
    stem = f"face_{index}"
    return {output: f"{stem}.{output}" for output in ("stl", "3mf", "ply", "usdz")}


def write_face_formats(face: Face, outdir: Path, options: Options, texture: np.ndarray | None) -> list[Path]:
    """The STL, 3MF, PLY and USDZ of one face, each only if ``options.outputs`` names it."""
    names = format_file_names(face.index)
    texture = np.full((4, 4, 3), 180, np.uint8) if texture is None else texture     # an engine without a texture
    writers = {"stl": lambda: stl_bytes(face, options), "3mf": lambda: threemf_bytes(face, options),
               "ply": lambda: ply_bytes(face, texture, options)}
    written = []
    for output, make in writers.items():
        if options.wants(output):
            path = outdir / names[output]
            path.write_bytes(make())
            written.append(path)
    if options.wants("usdz"):
        from face3d.shared.artifacts.usdz import write_usdz

        written.append(write_usdz(face, texture, outdir / names["usdz"]))
    return written
