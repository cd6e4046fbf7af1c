"""make bench-textures: what the textures of a folder of photos look like, in numbers, per face.

    python bench/bench_textures.py [FOLDER] [--summary]

FOLDER defaults to ../shared/faces. Per face: yaw, projected size, the seam across the UV midline
(bench/texture_quality.py: ~1 = like its surroundings), the shares of the surface colour taken from the mirror
image and not from the photo at all, the share found covered, the occlusion cues (shared/engines/cpu/occlusion.py)
and the warnings. --summary prints only the faces that raise `occluded` and the counts (for a data set such as the
AFLW2000-3D development split, which is mostly free of occlusions: every `occluded` there is worth a look).
Prints tables; asserts nothing.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.texture_quality import seam_step  # noqa: E402
from face3d.shared.engines.base import Options  # noqa: E402
from face3d.shared.engines.cpu import CpuEngine  # noqa: E402
from face3d.shared.errors import Face3dError  # noqa: E402
from face3d.shared.imaging import load_image  # noqa: E402

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "faces"
PHOTOS = {".jpg", ".jpeg", ".png", ".webp"}
ROW = "{photo:<30} {face:>4} {yaw:>5} {px:>5} {seam:>5} {mirrored:>8} {synthesized:>6} {occluded:>8}  {cues:<44} {warnings}"
CUES = (("mouth_dark", "mouth"), ("mouth_spread", "spread"), ("eye_disagreement", "eyes"), ("eye_contrast", "contrast"))


def cue_text(extra: dict) -> str:
    cues = extra.get("occlusion_cues", {})
    return " ".join(f"{label} {cues[key]:.2f}" for key, label in CUES if key in cues)


def face_row(photo: str, face) -> dict:
    x0, y0, x1, y1 = face.bbox
    return {"photo": photo[:30], "face": face.index, "yaw": f"{face.yaw:+.0f}", "px": f"{max(x1 - x0, y1 - y0):.0f}",
            "seam": f"{seam_step(face.texture, face.uvs, face.triangles):.2f}",
            "mirrored": f"{face.texture_mirrored or 0:.3f}" if face.texture_mirrored is not None else "-",
            "synthesized": f"{face.texture_synthesized:.2f}",
            "occluded": f"{face.occluded:.3f}" if face.occluded is not None else "-",
            "cues": cue_text(face.extra), "warnings": ",".join(face.warnings) or "-"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--summary", action="store_true", help="only the faces raising occluded, and the counts")
    args = parser.parse_args()
    engine = CpuEngine()
    engine.load()
    header = dict(photo="photo", face="face", yaw="yaw", px="px", seam="seam", mirrored="mirrored",
                  synthesized="synth", occluded="occluded", cues="occlusion cues", warnings="warnings")
    print(ROW.format(**header))
    counts = {"faces": 0, "occluded": 0, "texture_mirrored": 0}
    for path in sorted(p for p in args.folder.iterdir() if p.suffix.lower() in PHOTOS):
        try:
            faces = engine.reconstruct(load_image(path), Options(texture_size=512, outputs=frozenset({"obj"}))).faces
        except Face3dError:
            continue
        for face in faces:
            counts["faces"] += 1
            counts["occluded"] += "occluded" in face.warnings
            counts["texture_mirrored"] += "texture_mirrored" in face.warnings
            if not args.summary or "occluded" in face.warnings:
                print(ROW.format(**face_row(path.name, face)), flush=True)
    print(f"{counts['faces']} faces: {counts['occluded']} occluded, {counts['texture_mirrored']} texture_mirrored")


if __name__ == "__main__":
    main()
