"""face_<i>.usdz for AR Quick Look (iOS, visionOS) and USD tools, written with Pixar's usd-core (the optional
``usd`` extra: ``pip install 'face3d[usd]'``).

One Y-up stage in metres (metersPerUnit 1, as glTF): the face mesh with its texture through a UsdPreviewSurface,
single-sided, and a second single-sided mesh on the same points facing the other way with a dark material, so the
face seen from behind is never its skin; packed as an ARKit usdz (usdc root layer, PNG texture beside it).
"""
from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

import cv2
import numpy as np

from face3d.shared.engines.base import Face
from face3d.shared.errors import EngineUnavailable

USD_EXTRA = "USDZ needs the optional usd-core package: pip install 'face3d[usd]'"
BACK_COLOUR = (0.15, 0.15, 0.15)


def usdz_available() -> bool:
    return importlib.util.find_spec("pxr") is not None


def write_usdz(face: Face, texture: np.ndarray, path: Path) -> Path:
    if not usdz_available():
        raise EngineUnavailable(USD_EXTRA)
    from pxr import UsdUtils

    with tempfile.TemporaryDirectory(prefix="face3d-usd-") as folder:
        texture_name = f"face_{face.index}_texture.png"
        cv2.imwrite(str(Path(folder) / texture_name), cv2.cvtColor(texture, cv2.COLOR_RGB2BGR))
        layer = Path(folder) / f"face_{face.index}.usdc"
        _stage(face, texture_name, layer)
        if not UsdUtils.CreateNewARKitUsdzPackage(str(layer), str(path)):
            raise RuntimeError(f"usd-core could not package {path.name}")
    return path


def _stage(face: Face, texture_name: str, layer: Path) -> None:
    from pxr import Usd, UsdGeom

    stage = Usd.Stage.CreateNew(str(layer))
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    root = UsdGeom.Xform.Define(stage, "/face")
    stage.SetDefaultPrim(root.GetPrim())
    Usd.ModelAPI(root.GetPrim()).SetKind("component")
    triangles = np.asarray(face.triangles, np.int32)
    skin = _mesh(stage, "/face/skin", face.vertices, triangles, face.normals)
    _texture_coordinates(skin, face.uvs)
    _bind(skin, _skin_material(stage, texture_name))
    _bind(_mesh(stage, "/face/back", face.vertices, triangles[:, ::-1], -np.asarray(face.normals)), _back_material(stage))
    stage.GetRootLayer().Save()


def _mesh(stage, path: str, vertices: np.ndarray, triangles: np.ndarray, normals: np.ndarray):
    from pxr import UsdGeom, Vt

    mesh = UsdGeom.Mesh.Define(stage, path)
    points = Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(vertices, np.float32))
    mesh.CreatePointsAttr(points)
    mesh.CreateExtentAttr(UsdGeom.PointBased.ComputeExtent(points))
    mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(len(triangles), 3, np.int32)))
    mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(np.ascontiguousarray(triangles.ravel(), np.int32)))
    mesh.CreateNormalsAttr(Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(normals, np.float32)))
    mesh.SetNormalsInterpolation(UsdGeom.Tokens.vertex)
    mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    mesh.CreateDoubleSidedAttr(False)
    return mesh


def _texture_coordinates(mesh, uvs: np.ndarray) -> None:
    from pxr import Sdf, UsdGeom, Vt

    primvar = UsdGeom.PrimvarsAPI(mesh.GetPrim()).CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray,
                                                                 UsdGeom.Tokens.vertex)
    primvar.Set(Vt.Vec2fArray.FromNumpy(np.ascontiguousarray(np.clip(uvs, 0.0, 1.0), np.float32)))


def _surface(stage, path: str):
    from pxr import Sdf, UsdShade

    material = UsdShade.Material.Define(stage, path)
    shader = UsdShade.Shader.Define(stage, f"{path}/surface")
    shader.CreateIdAttr("UsdPreviewSurface")
    shader.CreateInput("metallic", Sdf.ValueTypeNames.Float).Set(0.0)
    shader.CreateInput("roughness", Sdf.ValueTypeNames.Float).Set(0.9)
    material.CreateSurfaceOutput().ConnectToSource(shader.ConnectableAPI(), "surface")
    return material, shader


def _skin_material(stage, texture_name: str):
    from pxr import Sdf, UsdShade

    material, shader = _surface(stage, "/face/materials/skin")
    reader = UsdShade.Shader.Define(stage, "/face/materials/skin/st")
    reader.CreateIdAttr("UsdPrimvarReader_float2")
    reader.CreateInput("varname", Sdf.ValueTypeNames.String).Set("st")
    image = UsdShade.Shader.Define(stage, "/face/materials/skin/texture")
    image.CreateIdAttr("UsdUVTexture")
    image.CreateInput("file", Sdf.ValueTypeNames.Asset).Set(texture_name)
    image.CreateInput("sourceColorSpace", Sdf.ValueTypeNames.Token).Set("sRGB")
    image.CreateInput("wrapS", Sdf.ValueTypeNames.Token).Set("clamp")
    image.CreateInput("wrapT", Sdf.ValueTypeNames.Token).Set("clamp")
    image.CreateInput("st", Sdf.ValueTypeNames.Float2).ConnectToSource(reader.ConnectableAPI(), "result")
    image.CreateOutput("rgb", Sdf.ValueTypeNames.Float3)
    shader.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).ConnectToSource(image.ConnectableAPI(), "rgb")
    return material


def _back_material(stage):
    from pxr import Gf, Sdf

    material, shader = _surface(stage, "/face/materials/back")
    shader.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).Set(Gf.Vec3f(*BACK_COLOUR))
    return material


def _bind(mesh, material) -> None:
    from pxr import UsdShade

    UsdShade.MaterialBindingAPI.Apply(mesh.GetPrim()).Bind(material)
