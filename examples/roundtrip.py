"""Encode a clip with the default model, decode it, and print one comparison line.

    python examples/roundtrip.py CLIP [--frames 250] [--out DIR]

The line compares the decoded clip with the original (centre-cropped to 256x256) by PSNR,
next to the trivial baseline of repeating the first frame (frame 0, the source image itself,
is left out of both), and gives the bit rate.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import fomcodec
from fomcodec.eval.metrics import psnr_rgb
from fomcodec.media.video_io import read_frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    stream_path = args.out / f"{args.clip.stem}.fomc"
    video_path = args.out / f"{args.clip.stem}.decoded.mp4"
    encoder = fomcodec.Encoder()
    encoded = encoder.encode_file(args.clip, stream_path, overwrite=True, max_frames=args.frames)
    print(encoded.summary())
    decoded = fomcodec.Decoder(encoder.model).decode_file(stream_path, video_path, overwrite=True)
    print(decoded.summary())
    original = np.stack(list(read_frames(args.clip, max_frames=args.frames)))
    output = np.stack(list(read_frames(video_path)))
    # Frame 0 is the source image itself: left out, or the baseline would get it for free.
    ours = psnr_rgb(original[1:], output[1 : len(original)])
    repeat = psnr_rgb(original[1:], np.repeat(original[:1], len(original) - 1, axis=0))
    print(
        f"{args.clip.name}: {encoded.kbps():.2f} kbit/s, PSNR {np.mean(ours):.2f} dB "
        f"(repeat-first-frame baseline {np.mean(repeat):.2f} dB) over {len(ours)} frames "
        f"-> {video_path}"
    )


if __name__ == "__main__":
    main()
