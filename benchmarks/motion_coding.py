"""Motion coding: bit rate against decoded quality, through the whole codec, on held-out clips.

    python benchmarks/motion_coding.py [--model fomc-small] [--frames 100] [--markdown FILE]

Every configuration encodes the same first ``--frames`` frames of each validation clip (people
not seen in training) with the encoder's defaults otherwise (AV1 source image, motion for every
other frame) and decodes them with the decoder's defaults. PSNR is exact RGB against the
original 256x256 frames, frame 0 (the source image) left out; "motion" is the MOTN/MOTA
payload in kbit/s; the time columns are the motion coder's own share of the encode and decode
(entropy coding only, not the networks).
"""

from __future__ import annotations

import argparse
import json
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from fomcodec.codec import bitstream as bs
from fomcodec.codec.pipeline import Decoder, Encoder
from fomcodec.codec.quantization import QuantizationParams
from fomcodec.eval import metrics
from fomcodec.media.video_io import probe_video, read_frames
from fomcodec.zoo import DEFAULT_MODEL, load_model

REPO = Path(__file__).resolve().parents[1]

CONFIGS: dict[str, dict] = {
    "lzma2 x10000/x1000 (seed)": {"motion_coding": "lzma2"},
    "range x10000/x1000": {"quantization": QuantizationParams(10_000, 1_000)},
    "range x2000/x200": {"quantization": QuantizationParams(2_000, 200)},
    "range x1000/x100": {"quantization": QuantizationParams(1_000, 100)},
    "range x500/x50": {"quantization": QuantizationParams(500, 50)},
    "range x500/x25": {"quantization": QuantizationParams(500, 25)},
    "range x500/x10": {"quantization": QuantizationParams(500, 10)},
    "range x250/x25": {"quantization": QuantizationParams(250, 25)},
    "range x250/x10 (default)": {},
    "range x125/x10": {"quantization": QuantizationParams(125, 10)},
    "range x250/x10, smoothing 1": {"smoothing": 1.0},
    "range x250, no Jacobians": {"jacobians": False},
}


def timed_motion_coding(stream: bs.Bitstream) -> tuple[int, float, float]:
    """Payload bytes, seconds to code and to decode the motion alone."""
    started = time.perf_counter()
    if stream.motion_coding == "lzma2":
        payload = bs.encode_motion(stream.motion)
        coded = time.perf_counter()
        bs.decode_motion(payload, stream.header)
    else:
        payload = bs.encode_motion_range(stream.motion, stream.header)
        coded = time.perf_counter()
        bs.decode_motion_range(payload, stream.header)
    return len(payload), coded - started, time.perf_counter() - coded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--split", type=Path, default=REPO / "models/splits/shared-data-v1.json")
    parser.add_argument("--clips", type=Path, default=REPO.parent / "shared/data/clips")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--configs", help="comma-separated subset of the configuration names")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    model = load_model(args.model, device="cpu")
    names = list(CONFIGS) if not args.configs else args.configs.split(",")
    clips = json.loads(args.split.read_text())["validation"]
    rows: dict[str, dict[str, list[float]]] = {
        n: {"kbps": [], "psnr": [], "encode_s": [], "decode_s": [], "network_s": []} for n in names
    }
    for clip in clips:
        path = args.clips / clip
        frames = np.stack(list(read_frames(path, max_frames=args.frames)))
        fps = probe_video(path).fps or Fraction(25)
        seconds = len(frames) / float(fps)
        for name in names:
            started = time.perf_counter()
            stream = Encoder(model, device="cpu", **CONFIGS[name]).encode_frames(iter(frames), fps)
            stream = bs.unpack(bs.pack(stream))
            decoded = np.concatenate(list(Decoder(model, device="cpu").decode_stream(stream)))
            total = time.perf_counter() - started
            size, encode_s, decode_s = timed_motion_coding(stream)
            row = rows[name]
            row["kbps"].append(size * 8 / 1000 / seconds)
            row["psnr"].append(float(metrics.psnr_rgb(frames[1:], decoded[1:]).mean()))
            row["encode_s"].append(encode_s)
            row["decode_s"].append(decode_s)
            row["network_s"].append(total)
            print(
                f"{clip[:40]:40s} {name:30s} {row['kbps'][-1]:6.3f} kbit/s "
                f"{row['psnr'][-1]:6.3f} dB",
                flush=True,
            )
    base = float(np.mean(rows[names[0]]["psnr"]))
    lines = [
        f"| motion coding ({args.model}, first {args.frames} frames, {len(clips)} held-out "
        f"clips) | motion kbit/s | PSNR dB | vs {names[0]} | coder share of encode+decode |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        row = rows[name]
        share = (sum(row["encode_s"]) + sum(row["decode_s"])) / sum(row["network_s"])
        lines.append(
            f"| {name} | {np.mean(row['kbps']):.3f} | {np.mean(row['psnr']):.3f} | "
            f"{np.mean(row['psnr']) - base:+.3f} | {100 * share:.2f} % |"
        )
    table = "\n".join(lines)
    print(table)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"model": args.model, "frames": args.frames, "clips": clips, "results": rows},
                indent=1,
            )
        )
    if args.markdown:
        args.markdown.write_text(table + "\n")


if __name__ == "__main__":
    main()
