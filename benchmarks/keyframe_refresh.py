"""Drift over long clips, and what keyframe refresh buys and costs.

    python benchmarks/keyframe_refresh.py [--refresh off,0.5,1,2] [--clips 8] [--skip N]
        [--model fomc-warp] [--max-interval SECONDS] [--quality Q] [--no-validation] [--json F]
        [--base-layer [--base-adapt off,28,30] [--base-crf N] [--base-fps-divisor K]]

The longest shared clips (class A and B, talking heads; class C full-body shots are left
out) and the held-out validation clips are encoded with each ``--refresh`` setting
(``off``: one source image for the whole clip) and decoded; every decoded frame is compared
with the original centre-cropped 256x256 frame. Reported per clip and setting: mean PSNR over
the clip, over its first and its last third, keyframes, source-image bytes and total kbit/s
(video only). The long clips are training clips, so their absolute PSNR flatters the model;
what is measured here is the codec's drift and what refresh does about it. ``--base-layer``
measures base layer streams (the encoder's default base settings) instead of keypoints: they
have no closed-loop refresh (source images at cuts and ``--max-interval`` only), so
``--refresh`` is ignored; the setting column reads ``base`` or, with ``--base-adapt``, the
adaptive frame rate's dB (``--base-adapt-db``; ``off``: one frame rate).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from fomcodec.codec import bitstream as bs
from fomcodec.codec.base_layer import BaseLayerSettings
from fomcodec.codec.image_codec import DEFAULT_QUALITY
from fomcodec.codec.pipeline import Decoder, Encoder
from fomcodec.eval.metrics import psnr_rgb
from fomcodec.media.video_io import read_frames
from fomcodec.zoo import DEFAULT_MODEL, load_model

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def long_clips(count: int) -> list[Path]:
    """The ``count`` longest talking-head clips (classes A and B) of the shared data."""
    manifest = json.loads((DATA / "manifest.json").read_text())
    heads = [e for e in manifest if e["cls"] in ("A", "B")]
    heads.sort(key=lambda e: -e["dur"])
    return [DATA / "clips" / e["file"] for e in heads[:count]]


def validation_clips(split: Path) -> list[Path]:
    return [DATA / "clips" / name for name in json.loads(split.read_text())["validation"]]


def thirds(scores: np.ndarray) -> tuple[float, float]:
    third = max(1, len(scores) // 3)
    return float(scores[:third].mean()), float(scores[-third:].mean())


def measure(
    clip: Path,
    setting: float | None,
    model: object,
    max_interval: float | None,
    quality: int = DEFAULT_QUALITY,
    base_layer: BaseLayerSettings | None = None,
) -> dict:
    """Encode and decode ``clip`` with refresh ``setting`` (dB or None), or as a base layer
    stream, and score it."""
    encoder = Encoder(
        None if base_layer else model,
        base_layer=base_layer,
        refresh_db=setting,
        max_keyframe_interval=max_interval,
        audio_bit_rate=None,
        image_quality=quality,
    )
    decoder = Decoder(None if base_layer else model)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.fomc"
        started = time.perf_counter()
        stats = encoder.encode_file(clip, path)
        encode_s = time.perf_counter() - started
        stream = bs.load(path)
    started = time.perf_counter()
    decoded = np.concatenate(list(decoder.decode_stream(stream)))
    decode_s = time.perf_counter() - started
    original = np.stack(list(read_frames(clip)))[: len(decoded)]
    scores = psnr_rgb(original, decoded)
    first, last = thirds(scores)
    return {
        "psnr": float(scores.mean()),
        "first_third": first,
        "last_third": last,
        "keyframes": [0, *(k.frame for k in stream.keyframes)],
        "image_bytes": stats.sizes["image"],
        "kbps": stats.kbps(),
        "encode_s": encode_s,
        "decode_s": decode_s,
        "frames": len(decoded),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refresh", default="off,0.5,1,2")
    parser.add_argument("--clips", type=int, default=8, help="longest shared clips to use")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--max-interval", type=float, default=None)
    parser.add_argument("--quality", type=int, default=DEFAULT_QUALITY, help="source images")
    parser.add_argument("--skip", type=int, default=0, help="leave out the N longest clips")
    parser.add_argument("--split", type=Path, default=REPO / "models/splits/shared-data-v1.json")
    parser.add_argument("--no-validation", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--base-layer", action="store_true", help="base layer streams instead")
    parser.add_argument("--base-adapt", default="off", help="adaptive frame rates (dB) or off")
    parser.add_argument("--base-crf", type=int, default=BaseLayerSettings.crf)
    parser.add_argument("--base-fps-divisor", type=int, default=BaseLayerSettings.fps_divisor)
    args = parser.parse_args()
    settings = [None if s == "off" else float(s) for s in args.refresh.split(",")]
    base = None
    if args.base_layer:
        base = BaseLayerSettings(crf=args.base_crf, fps_divisor=args.base_fps_divisor)
        settings = [None if s == "off" else float(s) for s in args.base_adapt.split(",")]
    model = None if base else load_model(args.model)
    clips = [("long", c) for c in long_clips(args.clips)[args.skip :]]
    if not args.no_validation:
        clips += [("held-out", c) for c in validation_clips(args.split)]
    results = []
    for group, clip in clips:
        for setting in settings:
            row = {"clip": clip.name, "group": group, "refresh_db": setting}
            refresh, layer = setting, base
            if base is not None:
                refresh, layer = None, dataclasses.replace(base, adapt_db=setting)
            row.update(measure(clip, refresh, model, args.max_interval, args.quality, layer))
            results.append(row)
            print(
                f"{group:8s} {clip.name[:44]:44s} refresh {setting!s:4s} "
                f"psnr {row['psnr']:.2f} first {row['first_third']:.2f} "
                f"last {row['last_third']:.2f} keyframes {len(row['keyframes'])} "
                f"image {row['image_bytes']} B {row['kbps']:.2f} kbit/s "
                f"enc {row['encode_s']:.1f}s dec {row['decode_s']:.1f}s",
                flush=True,
            )
    print(
        "\nmeans by group and setting (PSNR dB; first, last third; last - first: mean, worst "
        "clip; clips whose last third is within 1 dB of the first, or better; kbit/s; "
        "keyframes/min)"
    )
    for group in ("long", "held-out"):
        for setting in settings:
            rows = [r for r in results if r["group"] == group and r["refresh_db"] == setting]
            if not rows:
                continue
            minutes = sum(r["frames"] for r in rows) / 25 / 60

            def mean(key: str, rows: list[dict] = rows) -> float:
                return float(np.mean([r[key] for r in rows]))

            drifts = [r["last_third"] - r["first_third"] for r in rows]
            within = sum(d >= -1 for d in drifts)
            keys = sum(len(r["keyframes"]) for r in rows) / minutes
            print(
                f"| {group} | {setting or 'off'} | {mean('psnr'):.2f} | {mean('first_third'):.2f}"
                f" | {mean('last_third'):.2f} | {np.mean(drifts):+.2f} | {min(drifts):+.2f} "
                f"| {within} of {len(rows)} | {mean('kbps'):.2f} | {keys:.1f} |"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
