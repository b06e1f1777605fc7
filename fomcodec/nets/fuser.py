"""The learned base-layer fuser: a small two-scale CNN that corrects the classical detail
transfer of :mod:`fomcodec.codec.fusion`.

::

    base B, warped source W, warped low-resolution source W_low   (N, 3, H, W) in [0, 1]
      x = cat(B, W - W_low, B - W_low), pixel-unshuffled by u (9 u^2 channels at H/u)
      x --conv 3x3 (C) -- conv (C)--> a ----------------------------------------.
        --conv stride 2 (2C) -- residual conv pair--> b                          |
      b --bilinear x2--> cat(a, .) --conv (C)-- conv (3 u^2)-- pixel-shuffle by u--> r
      out = B + (W - W_low) + r     (r starts at zero: an untrained fuser is the classical one)

With ``unshuffle`` u = 1 the network runs at full resolution (``fuse-small``); u = 4 runs it
on 4 x 4 pixel blocks, 16 times fewer positions for the same cost per position
(``fuse-fast``).

``W - W_low`` is the detail the source image can add, ``B - W_low`` says where the warp does
not fit the base frame (occlusion, a new expression), where the detail should not be added.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from fomcodec.errors import ModelError
from fomcodec.nets.config import SectionConfig

#: Allowed ``unshuffle`` and ``flow_scale`` factors.
SCALES = (1, 2, 4)
#: Folder of the named fusers inside each model folder (``models/fusers/NAME.yaml``).
FUSER_FOLDER = "fusers"


@dataclass
class FuserConfig(SectionConfig):
    """Architecture of a :class:`BaseLayerFuser`: ``channels`` at the network's resolution
    (twice as many at half of it), ``unshuffle`` the pixel-block side it works on (1: full
    resolution), and ``flow_scale``, how much smaller than the frames the decoder measures the
    optical flow that warps the source (1: at the frame size; the fuser is trained on it)."""

    SECTION: ClassVar[str] = "fuser"

    name: str = "fuse-small"
    channels: int = 24
    unshuffle: int = 1
    flow_scale: int = 1
    notes: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.channels <= 256:
            raise ModelError(f"invalid fuser config '{self.name}': channels must be 1..256")
        for field, value in (("unshuffle", self.unshuffle), ("flow_scale", self.flow_scale)):
            if value not in SCALES:
                raise ModelError(
                    f"invalid fuser config '{self.name}': {field} must be one of {SCALES}"
                )


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class BaseLayerFuser(nn.Module):
    """Fuses an upscaled base frame with the source image warped onto it (see the module
    docstring); inputs and output (N, 3, H, W) in [0, 1], H and W multiples of twice the
    config's ``unshuffle``."""

    def __init__(self, config: FuserConfig | None = None) -> None:
        super().__init__()
        self.config = config or FuserConfig()
        c, blocks = self.config.channels, self.config.unshuffle**2
        self.stem, self.full = _conv(9 * blocks, c), _conv(c, c)
        self.down, self.half_a, self.half_b = (
            _conv(c, 2 * c, 2),
            _conv(2 * c, 2 * c),
            _conv(2 * c, 2 * c),
        )
        self.merge, self.out = _conv(3 * c, c), _conv(c, 3 * blocks)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(
        self, base: torch.Tensor, warped: torch.Tensor, warped_low: torch.Tensor
    ) -> torch.Tensor:
        detail = warped - warped_low
        x = torch.cat([base, detail, base - warped_low], 1)
        unshuffle = self.config.unshuffle
        if unshuffle > 1:
            x = F.pixel_unshuffle(x, unshuffle)
        full = F.relu(self.full(F.relu(self.stem(x))))
        half = F.relu(self.down(full))
        half = half + self.half_b(F.relu(self.half_a(half)))
        up = F.interpolate(half, size=full.shape[-2:], mode="bilinear", align_corners=False)
        residual = self.out(F.relu(self.merge(torch.cat([full, up], 1))))
        if unshuffle > 1:
            residual = F.pixel_shuffle(residual, unshuffle)
        return base + detail + residual
