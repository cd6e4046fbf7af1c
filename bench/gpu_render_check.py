"""gpu_check.py's CUDA parts: nvdiffrast rasterising a face from our HRN conversion, its timing, and pytorch3d's
rasteriser (HRN's second renderer, models/renderer.py) running a kernel on this GPU.

The face is an HRN-shaped result (a bulging 16 x 20 cm grid, 1-based triangles, UV v = 0 at the chin, a BGR float
texture) passed through ``convert_hrn_output``, as the engine does. Its texture is labelled: top half red, bottom
half blue, right half (u > 0.5) plus green. nvdiffrast keeps images and textures bottom-up (row 0 = bottom,
texture t = 0 at the bottom: its documentation, "Coordinate systems"), ours are top-down with v = 0 at the bottom,
so the texture goes in flipped and the image comes out flipped; u and v go in unchanged.
"""
from __future__ import annotations

import time

import numpy as np

from face3d.shared.engines.hrn.convert import CropBox, HrnPose, convert_hrn_output

GRID = 121


def cuda_ready() -> bool:
    try:
        import nvdiffrast.torch  # noqa: F401
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def labelled_face():
    u, v = (a.ravel() for a in np.meshgrid(np.linspace(0, 1, GRID), np.linspace(0, 1, GRID)))
    x, y = (u - 0.5) * 1.6, (v - 0.5) * 2.0
    z = 0.6 * np.sqrt(np.clip(1 - (x / 0.9) ** 2 - (y / 1.1) ** 2, 0, None))
    corner = (np.arange(GRID - 1)[:, None] * GRID + np.arange(GRID - 1)[None, :]).ravel()
    triangles = np.concatenate([np.stack([corner, corner + 1, corner + GRID], 1),
                                np.stack([corner + 1, corner + GRID + 1, corner + GRID], 1)])
    rgb = np.zeros((256, 256, 3), dtype=np.float32)
    rgb[:128, :, 0] = 255.0                  # texture top rows: red
    rgb[128:, :, 2] = 255.0                  # bottom rows: blue
    rgb[:, 128:, 1] = 255.0                  # right half (u > 0.5): green
    mesh = {"vertices": np.stack([x, y, z], 1), "faces": triangles + 1, "UVs": np.stack([u, v], 1),
            "normals": np.tile([0.0, 0.0, 1.0], (len(u), 1))}
    raw = {"output_img": rgb[..., ::-1], "output": {"mesh": mesh}}
    pose = HrnPose(angles=np.zeros(3), translation=np.zeros(3), align=np.array([512.0, 512.0, 1.0, 256.0, 256.0]))
    return convert_hrn_output(raw, CropBox(0, 0), pose, texture_size=256)


def render(face, size: int, context=None):
    """(top-down RGB float image, mask, context) of ``face`` seen frontally, orthographic, filling the frame."""
    import nvdiffrast.torch as dr
    import torch

    context = context or dr.RasterizeCudaContext()
    vertices = torch.tensor(face.vertices, dtype=torch.float32, device="cuda")
    centre, half = vertices.mean(0), (vertices.max(0).values - vertices.min(0).values).max() / 2 * 1.1
    clip = torch.cat([(vertices[:, :2] - centre[:2]) / half, -(vertices[:, 2:] - centre[2]) / half * 0.5,
                      torch.ones_like(vertices[:, :1])], 1)[None].contiguous()
    triangles = torch.tensor(face.triangles, dtype=torch.int32, device="cuda")
    raster, _ = dr.rasterize(context, clip, triangles, resolution=[size, size])
    uv, _ = dr.interpolate(torch.tensor(face.uvs, dtype=torch.float32, device="cuda")[None].contiguous(), raster,
                           triangles)
    texture = torch.tensor(face.texture[::-1].copy(), dtype=torch.float32, device="cuda")[None] / 255.0
    colour = dr.texture(texture.contiguous(), uv, filter_mode="linear")
    image = colour[0].flip(0).cpu().numpy()
    mask = (raster[0, ..., 3] > 0).flip(0).cpu().numpy()
    return image, mask, context


def check_render() -> list[tuple[bool, str]]:
    image, mask, _ = render(labelled_face(), 512)
    rows, cols = np.nonzero(mask)
    top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
    middle_x, middle_y = (left + right) // 2, (top + bottom) // 2
    forehead = image[top + (bottom - top) // 8, middle_x]
    chin = image[bottom - (bottom - top) // 8, middle_x]
    image_right = image[middle_y, right - (right - left) // 8]
    image_left = image[middle_y, left + (right - left) // 8]
    return [
        (mask.mean() > 0.3, f"face covers {mask.mean():.0%} of the 512 px frame"),
        (forehead[0] > 0.9 and forehead[2] < 0.1, f"forehead shows the texture's top (red): RGB {forehead.round(2)}"),
        (chin[2] > 0.9 and chin[0] < 0.1, f"chin shows the texture's bottom (blue): RGB {chin.round(2)}"),
        (image_right[1] > 0.9 and image_left[1] < 0.1,
         f"image right is u = 1 (green {image_right[1]:.2f}), image left u = 0 (green {image_left[1]:.2f})"),
    ]


def check_timing(repeat: int = 50) -> list[tuple[bool, str]]:
    import torch

    face, findings, context = labelled_face(), [], None
    for size in (512, 1024):
        _, _, context = render(face, size, context)          # first call: context and kernels
        torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(repeat):
            render(face, size, context)
        torch.cuda.synchronize()
        per_frame = (time.perf_counter() - started) * 1000 / repeat
        findings.append((True, f"{size} px: {per_frame:.2f} ms per frame (rasterise + interpolate + texture + "
                               f"copy back), {len(face.triangles)} triangles, {torch.cuda.get_device_name()}"))
    return findings


def check_pytorch3d() -> list[tuple[bool, str]]:
    """pytorch3d's mesh rasteriser on CUDA: "no kernel image" here means TORCH_CUDA_ARCH_LIST missed this GPU."""
    import torch

    try:
        from pytorch3d.renderer.mesh import rasterize_meshes
        from pytorch3d.structures import Meshes
    except ImportError as exc:
        return [(False, f"pytorch3d: not importable: {exc}")]
    vertices = torch.tensor([[[-0.5, -0.5, 1.0], [0.5, -0.5, 1.0], [0.0, 0.5, 1.0]]], device="cuda")
    faces = torch.tensor([[[0, 1, 2]]], device="cuda")
    capability = ".".join(map(str, torch.cuda.get_device_capability()))
    try:
        pix_to_face, *_ = rasterize_meshes(Meshes(vertices, faces), image_size=64)
        torch.cuda.synchronize()
    except RuntimeError as exc:
        return [(False, f"pytorch3d on sm_{capability}: {str(exc).splitlines()[0]}")]
    covered = float((pix_to_face >= 0).float().mean())
    return [(0.1 < covered < 0.9, f"pytorch3d rasterize_meshes on sm_{capability}: triangle covers {covered:.0%}")]
