"""Per-face mesh files through trimesh: face_<i>.obj + face_<i>.mtl + face_<i>_texture.png, and face_<i>.glb.

Texture encoding is the slow part (Pillow's default PNG level costs ~250 ms for a 1024^2 photo texture), so:
the PNG beside the OBJ is written once by OpenCV at a fast zlib level (lossless), and the GLB embeds a JPEG
(quality 90; trimesh keeps JPEG for images whose format is JPEG), which also keeps the GLB small for web viewers.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import trimesh
from PIL import Image
from trimesh.exchange.gltf import export_glb
from trimesh.exchange.obj import export_obj
from trimesh.visual.material import PBRMaterial, SimpleMaterial
from trimesh.visual.texture import TextureVisuals

from face3d.shared.engines.base import Face

PNG_LEVEL = 1
GLB_JPEG_QUALITY = 90


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
    return {"obj": f"{stem}.obj", "mtl": f"{stem}.mtl", "texture": f"{stem}_texture.png", "glb": f"{stem}.glb"}


def _jpeg_image(texture: np.ndarray) -> Image.Image:
    buffer = io.BytesIO()
    Image.fromarray(texture).save(buffer, format="JPEG", quality=GLB_JPEG_QUALITY)
    image = Image.open(io.BytesIO(buffer.getvalue()))
    image.encoderinfo = {"quality": GLB_JPEG_QUALITY}     # Pillow applies it when trimesh re-saves the image
    return image


def _mesh(face: Face, material) -> trimesh.Trimesh:
    visual = TextureVisuals(uv=np.clip(face.uvs, 0.0, 1.0), material=material)
    return trimesh.Trimesh(vertices=face.vertices, faces=face.triangles, vertex_normals=face.normals,
                           visual=visual, process=False, validate=False)


def obj_mesh(face: Face, material_name: str) -> trimesh.Trimesh:
    # No image on the material: trimesh would re-encode it slowly; the map_Kd line points at our own PNG.
    material = SimpleMaterial(name=material_name, diffuse=(255, 255, 255, 255), ambient=(255, 255, 255, 255),
                              specular=(0, 0, 0, 255), glossiness=1.0)
    return _mesh(face, material)


def glb_mesh(face: Face, texture: np.ndarray) -> trimesh.Trimesh:
    # Skin is a dielectric (glTF's default metallicFactor of 1 renders it dark); an open shell shows its inside too.
    material = PBRMaterial(name=f"face_{face.index}", baseColorTexture=_jpeg_image(texture), metallicFactor=0.0,
                           roughnessFactor=0.9, doubleSided=True)
    return _mesh(face, material)


def _write_obj(face: Face, names: dict[str, str], outdir: Path) -> None:
    mesh = obj_mesh(face, Path(names["texture"]).stem)
    text, files = export_obj(mesh, include_normals=True, include_texture=True, return_texture=True,
                             digits=6, mtl_name=names["mtl"], header="face3d")
    (outdir / names["obj"]).write_text(text)
    mtl = files[names["mtl"]].decode() + f"\nmap_Kd {names['texture']}\n"
    (outdir / names["mtl"]).write_text(mtl)


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


def write_face_files(face: Face, outdir: Path, texture_size: int,
                     outputs: frozenset[str] = frozenset({"obj", "glb"})) -> FaceFiles:
    """The OBJ (+ MTL + texture PNG) and GLB of one face, each only if ``outputs`` names it."""
    names = face_file_names(face.index)
    obj, glb = "obj" in outputs, "glb" in outputs
    paths = FaceFiles(*(outdir / names[key] if wanted else None
                        for key, wanted in (("obj", obj), ("mtl", obj), ("texture", obj), ("glb", glb))))
    if not (obj or glb):
        return paths
    texture = sized_texture(face.texture, texture_size)
    if obj:
        _write_obj(face, names, outdir)
        cv2.imwrite(str(paths.texture), cv2.cvtColor(texture, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])
    if glb:
        paths.glb.write_bytes(export_glb(trimesh.Scene(glb_mesh(face, texture))))
    return paths
