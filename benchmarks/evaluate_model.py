"""Self-reconstruction quality of a model on held-out clips, through the whole codec.

    python benchmarks/evaluate_model.py [--model fomc-small] [--frames 100]
        [--split models/splits/shared-data-v1.json] [--markdown docs/model-quality.md]

``--frames 0`` scores whole clips.

Each validation clip (people not seen in training) is encoded from its first frame and decoded
with the encoder's and decoder's defaults (AV1 source image, int16 motion for every other
frame), then compared frame by frame with the original centre-cropped 256x256 frames (the
first frame, the source image itself, is left out): PSNR, SSIM and MS-SSIM, next to the
baseline of repeating the first frame.
"""

from __future__ import annotations

import argparse
import json
from fractions import Fraction
from pathlib import Path

import numpy as np

from fomcodec import metrics
from fomcodec.codec import Decoder, Encoder
from fomcodec.video_io import probe_video, read_frames
from fomcodec.zoo import DEFAULT_MODEL, load_model

REPO = Path(__file__).resolve().parents[1]


def mean_metrics(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Mean PSNR (RGB, dB), SSIM and MS-SSIM of two (N, H, W, 3) uint8 stacks."""
    per_frame = metrics.frame_metrics(reference, candidate)
    return {"psnr": float(per_frame["psnr-rgb"].mean()),
            "ssim": float(per_frame["ssim-rgb"].mean()),
            "ms_ssim": float(per_frame["ms-ssim-rgb"].mean())}


def evaluate_clip(encoder: Encoder, decoder: Decoder, clip: Path, frames: int) -> dict:
    original = np.stack(list(read_frames(clip, max_frames=frames or None)))
    stream = encoder.encode_frames(iter(original), probe_video(clip).fps or Fraction(25))
    decoded = np.concatenate(list(decoder.decode_stream(stream)))
    # Frame 0 is the source image itself: scored for neither (the baseline would get it free).
    target, repeated = original[1:], np.repeat(original[:1], len(original) - 1, axis=0)
    return {"clip": clip.name, "frames": len(target),
            "codec": mean_metrics(target, decoded[1:]),
            "repeat_first_frame": mean_metrics(target, repeated)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--split", type=Path, default=REPO / "models/splits/shared-data-v1.json")
    parser.add_argument("--clips", type=Path, default=REPO.parent / "shared/data/clips")
    parser.add_argument("--frames", type=int, default=100, help="first N frames; 0: whole clips")
    parser.add_argument("--json", type=Path, help="write per-clip results here")
    parser.add_argument("--markdown", type=Path, help="write the table here")
    args = parser.parse_args()
    model = load_model(args.model, device="cpu")
    encoder, decoder = Encoder(model, device="cpu"), Decoder(model, device="cpu")
    names = json.loads(args.split.read_text())["validation"]
    results = [evaluate_clip(encoder, decoder, args.clips / name, args.frames) for name in names]
    span = f"first {args.frames} frames" if args.frames else "all frames"
    lines = [f"model {model.model_name} (weights {model.weights_hash.hex()}), {span} of "
             f"{len(results)} held-out clips ({sum(r['frames'] for r in results)} scored), "
             "256x256",
             "", "| clip | PSNR dB | SSIM | MS-SSIM | repeat PSNR | repeat SSIM | repeat MS-SSIM |",
             "|---|---|---|---|---|---|---|"]
    for r in results + [{"clip": "**mean**", **{k: {m: float(np.mean([x[k][m] for x in results]))
                                                   for m in ("psnr", "ssim", "ms_ssim")}
                                               for k in ("codec", "repeat_first_frame")}}]:
        c, b = r["codec"], r["repeat_first_frame"]
        lines.append(f"| {r['clip']} | {c['psnr']:.2f} | {c['ssim']:.3f} | {c['ms_ssim']:.3f} "
                     f"| {b['psnr']:.2f} | {b['ssim']:.3f} | {b['ms_ssim']:.3f} |")
    text = "\n".join(lines)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
