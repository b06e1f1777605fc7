"""Bytes vs quality of the source-image codecs on real 256x256 talking-head frames.

Takes the first frame of each of 12 clips (one per person), centre-crops it to a square,
resizes it to 256x256 with Lanczos, then encodes it with every (codec, quality, options)
setting below and reports mean bytes, mean RGB PSNR and encode/decode times. Frames live in
memory only (the footage is third-party and must never be written into the repository).

Usage::

    python benchmarks/source_image_coding.py [--clips DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

from fomcodec.codec.image_codec import AVIF_SPEED, DEFAULT_SUBSAMPLING, decode_image, encode_image
from fomcodec.eval.metrics import psnr_rgb

DEFAULT_CLIPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "clips"
SIZE = 256
TARGET_PSNR = (34.0, 35.0)

#: One clip per person, class A (talking heads), spread over sources and backgrounds.
CLIPS = (
    "Hangz-nju-cuhk+Talking-Face_PC-AVS__Audio_Source_00015.mp4",
    "Hangz-nju-cuhk+Talking-Face_PC-AVS__Audio_Source_00086.mp4",
    "Hangz-nju-cuhk+Talking-Face_PC-AVS__Pose_Source_00473.mp4",
    "OpenTalker+DPE__d.mp4",
    "OpenTalker+SadTalker__RD_Radio2_000.mp4",
    "OpenTalker+SadTalker__WDA_KatieHill_000.mp4",
    "OpenTalker+video-retalking__face_1.mp4",
    "OpenTalker+video-retalking__face_4.mp4",
    "Weizhi-Zhong+IP_LAP__129.mp4",
    "Zejun-Yang+AniPortrait__pose_ref_video.mp4",
    "wyhsirius+LIA__vox_driving3.mov",
    "yoyo-nb+Thin-Plate-Spline-Motion-Model__driving.mp4",
)


@dataclass(frozen=True)
class Setting:
    """One row of the table: a codec, a quality and codec options."""

    codec: str
    quality: int
    speed: int = AVIF_SPEED
    subsampling: str = DEFAULT_SUBSAMPLING

    @property
    def label(self) -> str:
        if self.codec == "png":
            return "png"
        extra = ""
        if self.codec in ("avif", "av1"):
            extra = f" s{self.speed} {self.subsampling}"
        elif self.codec == "jpeg":
            extra = f" {self.subsampling}"
        return f"{self.codec} q{self.quality}{extra}"


SETTINGS = (
    *(Setting("av1", q) for q in (20, 25, 30, 35, 40, 50, 60)),
    *(Setting("avif", q) for q in (20, 25, 30, 35, 40, 50, 60)),
    *(Setting("avif", q, subsampling="4:4:4") for q in (25, 30, 35, 40, 50)),
    *(Setting("avif", 30, speed=s) for s in (0, 4, 6, 8)),
    *(Setting("webp", q) for q in (20, 30, 40, 50, 60, 70, 80)),
    *(Setting("jpeg", q) for q in (30, 50, 75, 90)),
    *(Setting("jpeg", q, subsampling="4:4:4") for q in (30, 50)),
    Setting("png", 100),
)


def first_frame_256(path: Path) -> np.ndarray:
    """First video frame, centre square crop, Lanczos-resized to 256x256 RGB uint8."""
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        rgb = frame.to_ndarray(format="rgb24")
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = Image.fromarray(rgb[top : top + side, left : left + side])
    return np.asarray(crop.resize((SIZE, SIZE), Image.Resampling.LANCZOS))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """RGB PSNR in dB of two (H, W, 3) images (:func:`fomcodec.eval.metrics.psnr_rgb`)."""
    return float(psnr_rgb(a[None], b[None])[0])


def measure(setting: Setting, frames: list[np.ndarray]) -> dict:
    """Mean bytes, PSNR and timings of one setting over all frames."""
    sizes, psnrs, enc_ms, dec_ms = [], [], [], []
    for rgb in frames:
        t0 = time.perf_counter()
        img = encode_image(
            rgb, setting.codec, setting.quality, speed=setting.speed,
            subsampling=setting.subsampling,
        )  # fmt: skip
        t1 = time.perf_counter()
        out = decode_image(img)
        t2 = time.perf_counter()
        sizes.append(len(img.data))
        psnrs.append(psnr(rgb, out))
        enc_ms.append((t1 - t0) * 1e3)
        dec_ms.append((t2 - t1) * 1e3)
    return {
        "setting": setting.label,
        "codec": setting.codec,
        "quality": setting.quality,
        "bytes": float(np.mean(sizes)),
        "psnr": float(np.mean(psnrs)),
        "psnr_min": float(np.min(psnrs)),
        "encode_ms": float(np.mean(enc_ms)),
        "decode_ms": float(np.mean(dec_ms)),
    }


def bytes_at_psnr(rows: list[dict], target: float) -> float | None:
    """Mean bytes at ``target`` dB, interpolated linearly in (PSNR, log bytes); None if outside."""
    pts = sorted((r["psnr"], math.log(r["bytes"])) for r in rows)
    for (p0, b0), (p1, b1) in zip(pts, pts[1:], strict=False):
        if p0 <= target <= p1 and p1 > p0:
            return math.exp(b0 + (b1 - b0) * (target - p0) / (p1 - p0))
    return None


def family(setting: Setting) -> str:
    """The setting's label without the quality: rows of one family differ only in quality."""
    return setting.label.replace(f" q{setting.quality}", "")


def choose(rows: list[dict]) -> dict:
    """Fewest mean bytes among settings with mean PSNR >= the target's lower end.

    Only the quality sweeps at the default AVIF speed and subsampling take part; the other
    variants are there to justify those defaults.
    """
    ok = [
        r
        for s, r in zip(SETTINGS, rows, strict=True)
        if s.codec != "png"
        and s.speed == AVIF_SPEED
        and s.subsampling == DEFAULT_SUBSAMPLING
        and r["psnr"] >= TARGET_PSNR[0]
    ]
    return min(ok, key=lambda r: r["bytes"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, default=DEFAULT_CLIPS, help="clip folder")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    missing = [c for c in CLIPS if not (args.clips / c).is_file()]
    if missing:
        print(f"missing clips in {args.clips}: {missing}", file=sys.stderr)
        return 1
    frames = [first_frame_256(args.clips / c) for c in CLIPS]
    rows = []
    print(f"{len(frames)} frames, {SIZE}x{SIZE}; means over frames", file=sys.stderr)
    print("| setting | bytes | kbit | PSNR dB | min PSNR | enc ms | dec ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for setting in SETTINGS:
        r = measure(setting, frames)
        rows.append(r)
        print(
            f"| {r['setting']} | {r['bytes']:.0f} | {r['bytes'] * 8 / 1000:.1f} | "
            f"{r['psnr']:.2f} | {r['psnr_min']:.2f} | {r['encode_ms']:.1f} | "
            f"{r['decode_ms']:.1f} |",
            flush=True,
        )
    print("\n| family | bytes at 34.5 dB | bytes at 37 dB |")
    print("|---|---:|---:|")
    families: dict[str, list[dict]] = {}
    for setting, r in zip(SETTINGS, rows, strict=True):
        if setting.codec != "png":
            families.setdefault(family(setting), []).append(r)
    for name, fam in families.items():
        if len(fam) < 2:
            continue
        cells = [bytes_at_psnr(fam, t) for t in (34.5, 37.0)]
        print(f"| {name} | " + " | ".join("-" if c is None else f"{c:.0f}" for c in cells) + " |")
    best = choose(rows)
    print(f"\nchosen: {best['setting']} ({best['bytes']:.0f} B, {best['psnr']:.2f} dB)")
    if args.json:
        args.json.write_text(json.dumps({"frames": len(frames), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
