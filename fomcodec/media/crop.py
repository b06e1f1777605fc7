"""Square crop boxes and applying them to frames.

A :class:`CropBox` is a square in source pixels. It may extend past the frame (a face near
the edge); :func:`crop_and_resize` then fills the missing part by repeating the nearest
edge pixel (``pad="edge"``, the default: no artificial hard border for the keypoint
detector to latch on to, and nothing costly for the source-image coder) or with black
(``pad="black"``). A box that does not overlap the frame at all is an error.
"""

from __future__ import annotations

import numbers
from bisect import bisect_right
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

import numpy as np
from PIL import Image

PadMode = Literal["edge", "black"]


@dataclass(frozen=True)
class CropBox:
    """A square crop: top-left corner ``(x, y)`` and side ``size``, in source pixels."""

    x: int
    y: int
    size: int

    def __post_init__(self) -> None:
        for name in ("x", "y", "size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"crop box {name} must be an integer, not {value!r}")
            object.__setattr__(self, name, int(value))
        if self.size < 1:
            raise ValueError(f"crop box size must be positive, not {self.size}")

    def __str__(self) -> str:
        """``"x,y,size"``, the form :func:`parse_crop_box` reads."""
        return f"{self.x},{self.y},{self.size}"


@dataclass(frozen=True)
class CropSchedule:
    """One crop per shot: ``boxes[i]`` (None: the centre square) from frame ``starts[i]`` up
    to the next start; ``starts`` begins at 0 and increases."""

    starts: tuple[int, ...]
    boxes: tuple[CropBox | None, ...]

    def __post_init__(self) -> None:
        if not self.starts or self.starts[0] != 0 or len(self.starts) != len(self.boxes):
            raise ValueError("a crop schedule needs one box per start, the first at frame 0")
        if any(b <= a for a, b in pairwise(self.starts)):
            raise ValueError(f"crop schedule starts must increase, got {self.starts}")

    def box_at(self, frame: int) -> CropBox | None:
        """The box for frame index ``frame``."""
        return self.boxes[bisect_right(self.starts, frame) - 1]

    def __str__(self) -> str:
        return "; ".join(
            f"from frame {start}: {box or 'centre'}"
            for start, box in zip(self.starts, self.boxes, strict=True)
        )


def centre_square(width: int, height: int) -> CropBox:
    """The largest square centred in a ``width`` x ``height`` frame."""
    if width < 1 or height < 1:
        raise ValueError(f"frame size must be positive, not {width}x{height}")
    side = min(width, height)
    return CropBox((width - side) // 2, (height - side) // 2, side)


def parse_crop_box(text: str) -> CropBox:
    """Parse ``"x,y,size"`` or ``"x,y,w,h"`` (with ``w == h``) into a :class:`CropBox`."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) not in (3, 4):
        raise ValueError(f"crop box {text!r}: expected 'x,y,size' or 'x,y,w,h'")
    try:
        values = [int(part) for part in parts]
    except ValueError:
        raise ValueError(f"crop box {text!r}: values must be integers") from None
    if len(values) == 4:
        if values[2] != values[3]:
            raise ValueError(f"crop box {text!r}: must be square (w == h)")
        values = values[:3]
    if values[2] < 1:
        raise ValueError(f"crop box {text!r}: size must be positive")
    return CropBox(*values)


def crop_and_resize(
    frame: np.ndarray, box: CropBox, size: int = 256, pad: PadMode = "edge"
) -> np.ndarray:
    """Crop ``box`` out of an (H, W, 3) uint8 frame and resize it to (size, size, 3).

    Shrinking first averages whole pixel blocks (Pillow's ``reduce``) and then finishes with
    Lanczos (``reducing_gap=1``): anti-aliased, within ~50 dB PSNR of a pure Lanczos resize
    at a third to half its cost. Enlarging is plain Lanczos. Parts of ``box`` outside the
    frame are padded as ``pad`` says. Raises ValueError for a box that misses the frame.
    """
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 frame, got {frame.shape} {frame.dtype}")
    if size < 1:
        raise ValueError(f"output size must be positive, not {size}")
    if pad not in ("edge", "black"):
        raise ValueError(f"pad must be 'edge' or 'black', not {pad!r}")
    height, width = frame.shape[:2]
    right, bottom = box.x + box.size, box.y + box.size
    x0, y0 = max(box.x, 0), max(box.y, 0)
    x1, y1 = min(right, width), min(bottom, height)
    if x0 >= x1 or y0 >= y1:
        raise ValueError(f"crop box {box} lies outside the {width}x{height} frame")
    region = frame[y0:y1, x0:x1]
    if (x0, y0, x1, y1) != (box.x, box.y, right, bottom):
        widths = ((y0 - box.y, bottom - y1), (x0 - box.x, right - x1), (0, 0))
        region = np.pad(region, widths, mode="edge") if pad == "edge" else np.pad(region, widths)
    if box.size == size:
        return np.array(region, copy=True)
    image = Image.fromarray(np.ascontiguousarray(region))
    resized = image.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=1.0)
    return np.array(resized)
