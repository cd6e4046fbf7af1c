"""Per-face mesh files through trimesh: face_<i>.obj + face_<i>.mtl + face_<i>_texture.png, and face_<i>.glb.

The GLB is single-sided, with a second primitive on the same points facing the other way in a dark material: a
viewer never shows the inside of the shell as skin. The OBJ is in ``options.units`` (metres by default) and, with
``options.solid``, closed into the relief of shared/artifacts/solid.py (the added wall and back in a dark material).

Texture encoding was the slow part (Pillow's default PNG level costs ~250 ms for a 1024^2 photo texture, libpng's
fastest Huffman-only setting ~50 ms), so the texture is encoded once, by fpng (lossless, ~7 ms, files ~30 % larger
than libpng's): those PNG bytes are the file beside the OBJ and, unchanged, the GLB's image (trimesh would re-encode
a plain image; ``_encoded_image`` hands it the bytes).
"""
from __future__ import annotations

import io
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import fpng
import numpy as np
import trimesh
from PIL import Image, PngImagePlugin
from trimesh.exchange.gltf import export_glb
from trimesh.exchange.obj import export_obj
from trimesh.visual.material import PBRMaterial, SimpleMaterial
from trimesh.visual.texture import TextureVisuals

from face3d.shared.artifacts.formats import BACK_RGB, UNIT_SCALE, format_file_names, solid_of, units_of
from face3d.shared.artifacts.solid import Relief
from face3d.shared.engines.base import Face, Options


@dataclass(frozen=True)
class FaceFiles:
    obj: Path | None
    mtl: Path | None
    texture: Path | None
    glb: Path | None

    def as_list(self) -> list[Path]:
        return [path for path in (self.obj, self.mtl, self.texture, self.glb) if path is not None]


def face_file_names(index: int) -> dict[str, str]:
    stem = f"face_{index}"
    return {"obj": f"{stem}.obj", "mtl": f"{stem}.mtl", "texture": f"{stem}_texture.png", "glb": f"{stem}.glb",
            **format_file_names(index), "turntable_mp4": f"turntable_face{index}.mp4"}


def png_bytes(rgb: np.ndarray) -> bytes:
    """A lossless PNG of an RGB (or grey) uint8 image, fast (fpng)."""
    image = np.asarray(rgb, dtype=np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return fpng.from_ndarray(np.ascontiguousarray(image[:, :, :3]))


class _EncodedPng(PngImagePlugin.PngImageFile):
    """A PNG opened from bytes that trimesh's GLB writer embeds as they are: ``save`` writes the bytes, and the
    array trimesh hashes materials with is the bytes too (decoding a 1024^2 PNG for a hash costs ~25 ms)."""

    encoded: bytes

    def save(self, fp, format=None, **params):  # noqa: A002 - Pillow's signature
        fp.write(self.encoded)

    @property
    def __array_interface__(self):
        return np.frombuffer(self.encoded, np.uint8).__array_interface__


def _encoded_image(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.__class__ = _EncodedPng
    image.encoded = png
    return image


def _mesh(face: Face, material, scale: float = 1.0) -> trimesh.Trimesh:
    visual = TextureVisuals(uv=np.clip(face.uvs, 0.0, 1.0), material=material)
    return trimesh.Trimesh(vertices=np.asarray(face.vertices) * scale, faces=face.triangles,
                           vertex_normals=face.normals, visual=visual, process=False, validate=False)


def obj_mesh(face: Face, material_name: str, scale: float = 1.0) -> trimesh.Trimesh:
    # No image on the material: trimesh would re-encode it slowly; the map_Kd line points at our own PNG.
    material = SimpleMaterial(name=material_name, diffuse=(255, 255, 255, 255), ambient=(255, 255, 255, 255),
                              specular=(0, 0, 0, 255), glossiness=1.0)
    return _mesh(face, material, scale)


def glb_scene(face: Face, texture: np.ndarray, png: bytes | None = None) -> trimesh.Scene:
    # Skin is a dielectric (glTF's default metallicFactor of 1 renders it dark). Single-sided: the back primitive
    # (the same points, triangles turned round) shows the inside of the shell dark instead of as skin.
    material = PBRMaterial(name=f"face_{face.index}", baseColorTexture=_encoded_image(png or png_bytes(texture)), metallicFactor=0.0,
                           roughnessFactor=0.9, doubleSided=False)
    back = trimesh.Trimesh(vertices=face.vertices, faces=np.asarray(face.triangles)[:, ::-1],
                           vertex_normals=-np.asarray(face.normals), process=False, validate=False)
    back.visual = TextureVisuals(material=PBRMaterial(name=f"face_{face.index}_back", metallicFactor=0.0,
                                                      roughnessFactor=1.0, baseColorFactor=(*BACK_RGB, 255)))
    scene = trimesh.Scene()
    scene.add_geometry(_mesh(face, material), geom_name=f"face_{face.index}", node_name=f"face_{face.index}")
    scene.add_geometry(back, geom_name=f"face_{face.index}_back", node_name=f"face_{face.index}_back")
    return scene


def _back_of(solid: Relief, index: int) -> trimesh.Trimesh:
    """The relief's wall and back plate, for a solid OBJ: its own vertices, joined to the face along the outline."""
    added = solid.triangles[solid.face_triangles:]
    used, inverse = np.unique(added, return_inverse=True)
    back = trimesh.Trimesh(solid.vertices[used], inverse.reshape(-1, 3), process=False, validate=False)
    back.visual = TextureVisuals(uv=np.zeros((len(used), 2)), material=SimpleMaterial(
        name=f"face_{index}_back", diffuse=(*BACK_RGB, 255), ambient=(0, 0, 0, 255), specular=(0, 0, 0, 255)))
    back.metadata["name"] = f"face_{index}_back"
    return back


def _write_obj(face: Face, names: dict[str, str], outdir: Path, options: Options) -> None:
    units = units_of("obj", options)
    if options.solid:                # the face's vertices move with the relief's size option
        solid = solid_of(face, options, units)
        face = replace(face, vertices=solid.vertices[: solid.face_vertices])
        meshes = [obj_mesh(face, Path(names["texture"]).stem), _back_of(solid, face.index)]
        meshes[0].metadata["name"] = f"face_{face.index}"
    else:
        _write_shell_obj(face, names, outdir, UNIT_SCALE[units], f"face3d; units: {units}")
        return
    text, files = export_obj(trimesh.Scene(meshes) if len(meshes) > 1 else meshes[0], include_normals=True,
                             include_texture=True, return_texture=True, digits=6, mtl_name=names["mtl"],
                             header=f"face3d; units: {units}")
    (outdir / names["obj"]).write_text(text)
    material = f"newmtl {Path(names['texture']).stem}"
    blocks = [block + f"\nmap_Kd {names['texture']}" if block.strip().startswith(material) else block
              for block in files[names["mtl"]].decode().split("\n\n")]
    (outdir / names["mtl"]).write_text("\n\n".join(blocks) + "\n")


def _write_shell_obj(face: Face, names: dict[str, str], outdir: Path, scale: float, header: str) -> None:
    """The open shell's OBJ and MTL, as trimesh writes them (same lines, 6 decimals), formatted in one pass: trimesh's
    per-array formatting cost ~30 ms a face, a fifth of the time to a stored mesh."""
    material = Path(names["texture"]).stem
    vertices = np.asarray(face.vertices) * scale          # in their own dtype, as trimesh scales them
    uvs, normals = np.clip(np.asarray(face.uvs, np.float64), 0.0, 1.0), np.asarray(face.normals, np.float64)
    corners = np.repeat(np.asarray(face.triangles, np.int64) + 1, 3, axis=1)
    text = "".join([f"# {header}\nmtllib {names['mtl']}\nusemtl {material}\n",
                    _lines("v %.6f %.6f %.6f\n", vertices), _lines("vn %.6f %.6f %.6f\n", normals),
                    _lines("vt %.6f %.6f\n", uvs), _lines("f %d/%d/%d %d/%d/%d %d/%d/%d\n", corners), "\n"])
    (outdir / names["obj"]).write_text(text)
    (outdir / names["mtl"]).write_text(f"# {header}\n\nnewmtl {material}\nKa 1.00000000 1.00000000 1.00000000\n"
                                       "Kd 1.00000000 1.00000000 1.00000000\nKs 0.00000000 0.00000000 0.00000000\n"
                                       f"Ns 1.00000000\nmap_Kd {names['texture']}\n")


def _lines(template: str, rows: np.ndarray) -> str:
    return (template * len(rows)) % tuple(rows.ravel().tolist())


def sized_texture(texture: np.ndarray, size: int) -> np.ndarray:
    """The texture at the requested side (engines may produce another size; UVs are relative, so resizing is safe)."""
    texture = np.asarray(texture, dtype=np.uint8)
    if texture.ndim == 2:
        texture = np.repeat(texture[:, :, None], 3, axis=2)
    texture = np.ascontiguousarray(texture[:, :, :3])
    if texture.shape[:2] == (size, size):
        return texture
    shrinking = size < max(texture.shape[:2])
    return cv2.resize(texture, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def write_face_files(face: Face, outdir: Path, options: Options) -> FaceFiles:
    """The OBJ (+ MTL + texture PNG) and GLB of one face, each only if ``options.outputs`` names it."""
    names = face_file_names(face.index)
    obj, glb = options.wants("obj"), options.wants("glb")
    paths = FaceFiles(*(outdir / names[key] if wanted else None
                        for key, wanted in (("obj", obj), ("mtl", obj), ("texture", obj), ("glb", glb))))
    if not (obj or glb):
        return paths
    texture = sized_texture(face.texture, options.texture_size)
    png = png_bytes(texture)
    if obj:
        _write_obj(face, names, outdir, options)
        paths.texture.write_bytes(png)
    if glb:
        paths.glb.write_bytes(export_glb(glb_scene(face, texture, png)))
    return paths
