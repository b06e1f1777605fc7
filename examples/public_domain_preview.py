"""Original | decoded preview and frame strip from footage anyone may publish.

    python examples/public_domain_preview.py [--strip docs/preview-strip.png]
        [--preview preview.gif] [--frames 50] [--model fomc-small]

The shared talking-head clips may not be committed, nor frames derived from them, so this
makes its own clip (:mod:`fomcodec.media.sample_clip`): the official U.S. Navy portrait of Grace
Hopper (public domain), which ships inside the matplotlib wheel, moved by a smooth rigid head
motion (turn, shift, small zoom) at 25 frames/s. It is encoded and decoded
with the codec as ``fomc preview`` does, and the comparison line is printed. The clip
has head motion only, no speech or expression, so it shows how the model carries a face it
has never seen, not how well it renders a mouth.
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import numpy as np

import fomcodec
from fomcodec.codec import bitstream
from fomcodec.eval.metrics import psnr_rgb
from fomcodec.eval.preview import side_by_side, write_preview, write_strip
from fomcodec.media.sample_clip import FPS, public_domain_clip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strip", type=Path, default=Path("docs/preview-strip.png"))
    parser.add_argument(
        "--preview",
        type=Path,
        default=None,
        help="also write the looping original | decoded GIF or MP4 here",
    )
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    original = public_domain_clip(args.frames)
    encoder = fomcodec.Encoder(args.model)
    data = bitstream.pack(encoder.encode_frames(iter(original), Fraction(FPS)))
    decoder = fomcodec.Decoder(encoder.model)
    decoded = np.concatenate(list(decoder.decode_stream(bitstream.unpack(data))))
    ours = psnr_rgb(original[1:], decoded[1:]).mean()
    repeat = psnr_rgb(original[1:], np.repeat(original[:1], len(original) - 1, axis=0)).mean()
    print(
        f"{len(decoded)} frames, {len(data)} B ({len(data) * 8 / 1000 / (len(decoded) / FPS):.2f}"
        f" kbit/s); frames 1..: decoded {ours:.2f} dB PSNR, repeating frame 0 {repeat:.2f} dB"
    )
    write_strip(original, decoded, args.strip, overwrite=True)
    if args.preview:
        write_preview(side_by_side(original, decoded), Fraction(FPS), args.preview, True)


if __name__ == "__main__":
    main()
