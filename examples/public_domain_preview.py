"""Original | decoded preview and frame strip from footage anyone may publish.

    python examples/public_domain_preview.py [--strip docs/preview-strip.png]
        [--preview preview.gif] [--frames 50] [--model fomc-small]

The shared talking-head clips may not be committed, nor frames derived from them, so this
makes its own clip: the official U.S. Navy portrait of Grace Hopper (a work of the U.S.
government, public domain), which ships inside the matplotlib wheel, moved by a smooth rigid
head motion (turn, nod-like shift, small zoom) at 25 frames/s. It is encoded and decoded
with the codec as ``fomc preview`` does, and the comparison line is printed. The clip
has head motion only, no speech or expression, so it shows how the model carries a face it
has never seen, not how well it renders a mouth.
"""

from __future__ import annotations

import argparse
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
from matplotlib import cbook
from PIL import Image

import fomcodec
from fomcodec import bitstream
from fomcodec.fileio import atomic_output
from fomcodec.metrics import psnr_rgb
from fomcodec.preview import frame_strip, side_by_side, write_preview

FPS = 25
SIZE = 256
#: Square around the head in the 512x600 portrait: centre x, centre y, side (pixels).
HEAD_BOX = (262, 215, 400)


def portrait() -> Image.Image:
    """Grace Hopper's portrait from matplotlib's sample data (RGB)."""
    with cbook.get_sample_data("grace_hopper.jpg") as file:
        return Image.open(file).convert("RGB")


def moving_head(image: Image.Image, frames: int) -> np.ndarray:
    """(frames, SIZE, SIZE, 3): the head box turned, shifted and zoomed smoothly over time."""
    cx, cy, side = HEAD_BOX
    out = []
    for i in range(frames):
        phase = 2 * math.pi * i / frames
        angle = math.radians(6 * math.sin(phase))
        scale = side / SIZE * (1 + 0.05 * math.sin(2 * phase))
        shift_x, shift_y = 14 * math.sin(phase + 1.0), 8 * math.sin(2 * phase)
        cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
        # output pixel (u, v) -> input pixel: rotate and scale about the box centre, then shift
        u0 = v0 = SIZE / 2
        coefficients = (cos, -sin, cx + shift_x - cos * u0 + sin * v0,
                        sin, cos, cy + shift_y - sin * u0 - cos * v0)
        frame = image.transform((SIZE, SIZE), Image.Transform.AFFINE, coefficients,
                                resample=Image.Resampling.BICUBIC)
        out.append(np.asarray(frame))
    return np.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strip", type=Path, default=Path("docs/preview-strip.png"))
    parser.add_argument("--preview", type=Path, default=None,
                        help="also write the looping original | decoded GIF or MP4 here")
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    original = moving_head(portrait(), args.frames)
    encoder = fomcodec.Encoder(args.model)
    data = bitstream.pack(encoder.encode_frames(iter(original), Fraction(FPS)))
    decoder = fomcodec.Decoder(encoder.model)
    decoded = np.concatenate(list(decoder.decode_stream(bitstream.unpack(data))))
    ours = psnr_rgb(original[1:], decoded[1:]).mean()
    repeat = psnr_rgb(original[1:], np.repeat(original[:1], len(original) - 1, axis=0)).mean()
    print(f"{len(decoded)} frames, {len(data)} B ({len(data) * 8 / 1000 / (len(decoded) / FPS):.2f}"
          f" kbit/s); frames 1..: decoded {ours:.2f} dB PSNR, repeating frame 0 {repeat:.2f} dB")
    with atomic_output(args.strip, overwrite=True) as tmp:
        Image.fromarray(frame_strip(original, decoded, 6)).save(tmp, format="PNG")
    if args.preview:
        write_preview(side_by_side(original, decoded), Fraction(FPS), args.preview, True)


if __name__ == "__main__":
    main()
