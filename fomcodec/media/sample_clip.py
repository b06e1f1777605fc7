"""A talking-head clip anyone may publish, for demos, previews and tests.

The official U.S. Navy portrait of Grace Hopper (a work of the U.S. government, public
domain) ships inside the matplotlib wheel; :func:`public_domain_clip` moves its head box with a
smooth rigid motion (turn, shift, small zoom) over one cycle. Head motion only: no speech, no
expression.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

FPS = 25
SIZE = 256
#: Square around the head in the 512x600 portrait: centre x, centre y, side (pixels).
HEAD_BOX = (262, 215, 400)


def portrait() -> Image.Image:
    """Grace Hopper's portrait from matplotlib's sample data (RGB)."""
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as file:
        return Image.open(file).convert("RGB")


def public_domain_clip(frames: int = 50, image: Image.Image | None = None) -> np.ndarray:
    """(frames, SIZE, SIZE, 3) uint8 at :data:`FPS`: the portrait's head box turned, shifted
    and zoomed smoothly over one cycle."""
    image = image or portrait()
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
        coefficients = (
            cos,
            -sin,
            cx + shift_x - cos * u0 + sin * v0,
            sin,
            cos,
            cy + shift_y - sin * u0 - cos * v0,
        )
        frame = image.transform(
            (SIZE, SIZE), Image.Transform.AFFINE, coefficients, resample=Image.Resampling.BICUBIC
        )
        out.append(np.asarray(frame))
    return np.stack(out)
