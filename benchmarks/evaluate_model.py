"""Self-reconstruction quality of models on held-out clips, through the whole codec.

    python benchmarks/evaluate_model.py [--models fomc-warp,fomc-small] [--frames 250]
        [--preset NAME] [--refresh-db 2] [--no-akd] [--split models/splits/shared-data-v1.json]
        [--json FILE] [--markdown FILE]

``--frames 0`` scores whole clips.

Each validation clip (people not seen in training) is encoded from its first frame and decoded
with the encoder's and decoder's defaults (AV1 source image, range-coded motion for every
other frame, keyframe refresh; ``--preset`` and ``--refresh-db`` as ``fomc encode``), then
compared frame by frame with the original centre-cropped 256x256 frames (the first frame, the
source image itself, is left out): PSNR (RGB), SSIM, MS-SSIM and AKD (facial landmarks, lower
is better; needs the ``landmarks`` extra), next to the baseline of repeating the first frame;
the stream's bit rate (whole and motion alone) and its number of source images are reported
beside. Decoding time per frame is measured for every model on the same clips, the models
taking turns clip by clip, and reported as a ratio to the first model's.
"""

from __future__ import annotations

import argparse
import json
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from fomcodec.codec import bitstream as bs
from fomcodec.codec.keyframes import DEFAULT_REFRESH_DB
from fomcodec.codec.pipeline import Decoder, Encoder
from fomcodec.eval.landmarks import landmarks_available
from fomcodec.eval.metrics import QualityMeter
from fomcodec.media.video_io import probe_video, read_frames
from fomcodec.zoo import DEFAULT_MODEL, load_model

REPO = Path(__file__).resolve().parents[1]
KEYS = {"psnr-rgb": "psnr", "ssim-rgb": "ssim", "ms-ssim-rgb": "ms_ssim", "akd": "akd"}


def mean_metrics(reference: np.ndarray, candidate: np.ndarray, akd: bool) -> dict[str, float]:
    """Mean PSNR (RGB, dB), SSIM, MS-SSIM (and AKD in pixels) of two (N, H, W, 3) stacks."""
    with QualityMeter(akd=akd) as meter:
        for start in range(0, len(reference), 32):
            meter.update(reference[start : start + 32], candidate[start : start + 32])
        result = meter.result()
    return {short: result[name] for name, short in KEYS.items() if name in result}


def evaluate_clip(
    models: dict,
    clip: Path,
    frames: int,
    preset: str | None = None,
    akd: bool = False,
    refresh_db: float | None = DEFAULT_REFRESH_DB,
) -> dict:
    """Scores and bit rates of each model (label -> model) and the scores of repeating the
    first frame on one clip."""
    original = np.stack(list(read_frames(clip, max_frames=frames or None)))
    fps = probe_video(clip).fps or Fraction(25)
    target = original[1:]
    out = {
        "clip": clip.name,
        "frames": len(target),
        "repeat_first_frame": mean_metrics(target, np.repeat(original[:1], len(target), 0), akd),
    }
    for label, model in models.items():
        started = time.perf_counter()
        encoder = Encoder(model, device="cpu", preset=preset, refresh_db=refresh_db)
        stream = encoder.encode_frames(iter(original), fps)
        encode_seconds = time.perf_counter() - started
        sizes = bs.section_sizes(bs.pack(stream))
        seconds_of_video = len(original) / float(fps)
        started = time.perf_counter()
        decoded = np.concatenate(list(Decoder(model, device="cpu").decode_stream(stream)))
        seconds = time.perf_counter() - started
        out[label] = {
            **mean_metrics(target, decoded[1:], akd),
            "decode_ms_per_frame": 1000 * seconds / len(decoded),
            "encode_ms_per_frame": 1000 * encode_seconds / len(original),
            "kbps": sum(sizes.values()) * 8 / 1000 / seconds_of_video,
            "motion_kbps": sizes.get("motion", 0) * 8 / 1000 / seconds_of_video,
            "keyframes": len(stream.source_images),
        }
    return out


def _mean(results: list[dict], key: str, metric: str) -> float:
    return float(np.nanmean([r[key][metric] for r in results]))


def report(
    results: list[dict],
    names: list[str],
    frames: int,
    preset: str | None,
    refresh_db: float | None,
) -> str:
    span = f"first {frames} frames" if frames else "all frames"
    refresh = f"refresh {refresh_db} dB" if refresh_db else "no refresh"
    akd = "akd" in results[0]["repeat_first_frame"]
    lines = [
        f"{span} of {len(results)} held-out clips "
        f"({sum(r['frames'] for r in results)} frames scored), 256x256, "
        f"preset {preset or 'default'}, {refresh}; "
        "gains are over repeating the first frame",
        "",
    ]
    for name in names:
        lines += [
            f"**{name}**",
            "",
            "| clip | kbit/s (motion) | keyframes | PSNR dB | gain dB | SSIM | MS-SSIM (repeat) |"
            + (" AKD px (repeat) |" if akd else ""),
            "|---|---|---|---|---|---|---|" + ("---|" if akd else ""),
        ]
        for r in results:
            ours, base = r[name], r["repeat_first_frame"]
            row = (
                f"| {r['clip']} | {ours['kbps']:.2f} ({ours['motion_kbps']:.2f}) | "
                f"{ours['keyframes']} | {ours['psnr']:.2f} | {ours['psnr'] - base['psnr']:+.2f} | "
                f"{ours['ssim']:.3f} | {ours['ms_ssim']:.3f} ({base['ms_ssim']:.3f}) |"
            )
            if akd:
                row += f" {ours['akd']:.2f} ({base['akd']:.2f}) |"
            lines.append(row)
        gains = [r[name]["psnr"] - r["repeat_first_frame"]["psnr"] for r in results]
        ms_better = sum(r[name]["ms_ssim"] > r["repeat_first_frame"]["ms_ssim"] for r in results)
        summary = (
            f"{_mean(results, name, 'kbps'):.2f} kbit/s (motion "
            f"{_mean(results, name, 'motion_kbps'):.2f}), mean PSNR "
            f"{_mean(results, name, 'psnr'):.2f} dB, gain "
            f"{np.mean(gains):+.2f} dB (smallest {min(gains):+.2f}); MS-SSIM above "
            f"repeat on {ms_better} of {len(results)} clips"
        )
        if akd:
            akd_better = sum(r[name]["akd"] < r["repeat_first_frame"]["akd"] for r in results)
            summary += (
                f"; AKD {_mean(results, name, 'akd'):.2f} px against "
                f"{_mean(results, 'repeat_first_frame', 'akd'):.2f}, lower on "
                f"{akd_better} of {len(results)} clips"
            )
        lines += ["", summary, ""]
    first = _mean(results, names[0], "decode_ms_per_frame")
    lines.append(
        "encode time per frame (same run): "
        + ", ".join(f"{n} {_mean(results, n, 'encode_ms_per_frame'):.1f} ms" for n in names)
    )
    lines.append(
        "decode time per frame (2 threads, same run): "
        + ", ".join(
            f"{n} {_mean(results, n, 'decode_ms_per_frame'):.1f} ms "
            f"({_mean(results, n, 'decode_ms_per_frame') / first:.2f}x)"
            for n in names
        )
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        default=DEFAULT_MODEL,
        help="comma-separated model names or paths; the first is the reference "
        "of the decode-time ratio",
    )
    parser.add_argument("--split", type=Path, default=REPO / "models/splits/shared-data-v1.json")
    parser.add_argument("--clips", type=Path, default=REPO.parent / "shared/data/clips")
    parser.add_argument("--frames", type=int, default=250, help="first N frames; 0: whole clips")
    parser.add_argument("--preset", help="as fomc encode (default: the model's default)")
    parser.add_argument(
        "--refresh-db",
        type=float,
        default=DEFAULT_REFRESH_DB,
        help=f"keyframe refresh threshold (default {DEFAULT_REFRESH_DB}); 0: off",
    )
    parser.add_argument("--no-akd", action="store_true")
    parser.add_argument("--json", type=Path, help="write per-clip results here")
    parser.add_argument("--markdown", type=Path, help="write the tables here")
    args = parser.parse_args()
    models = {name: load_model(name, device="cpu") for name in args.models.split(",")}
    akd = not args.no_akd and landmarks_available()
    names = json.loads(args.split.read_text())["validation"]
    results = []
    for name in names:
        results.append(
            evaluate_clip(
                models, args.clips / name, args.frames, args.preset, akd, args.refresh_db or None
            )
        )
        print(
            f"{name}: "
            + ", ".join(f"{label} {results[-1][label]['psnr']:.2f}" for label in models)
            + f", repeat {results[-1]['repeat_first_frame']['psnr']:.2f}",
            flush=True,
        )
    text = report(results, list(models), args.frames, args.preset, args.refresh_db or None)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
