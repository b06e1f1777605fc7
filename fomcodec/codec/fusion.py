"""Fusion of base frames with the source images' detail (the ``detail`` fuser: no network).

::

    each base frame B, with its segment's source image S:
        S_low = S through the same down- and up-scaling as the base frames
        flow  = DIS optical flow from B to S_low (both grey)
        out   = B + warp(S, flow) - warp(S_low, flow)

The base frame gives colour and position, the source image what the small frame lost.
Measured in docs/base-layer.md.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from fomcodec.codec.base_video import downscale, upscale, upscaled_frames
from fomcodec.codec.bitstream import Bitstream
from fomcodec.codec.image_codec import decode_image


class DetailFuser:
    """Adds what a base frame lacks from one source image: the source, warped onto the base
    frame by dense optical flow, less its own low-resolution version warped the same way."""

    def __init__(self, source: np.ndarray, base_width: int, base_height: int) -> None:
        height, width = source.shape[:2]
        low = upscale(downscale(source, base_width, base_height), width, height)
        self._source = source.astype(np.float32)
        self._source_low = low.astype(np.float32)
        self._source_low_grey = cv2.cvtColor(low, cv2.COLOR_RGB2GRAY)
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self._grid_x, self._grid_y = np.meshgrid(
            np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)
        )

    def fuse(self, base: np.ndarray) -> np.ndarray:
        """Fuse one float32 base frame at the source's size into a uint8 RGB frame."""
        grey = cv2.cvtColor(np.clip(base + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
        flow = self._flow.calc(grey, self._source_low_grey, None)
        map_x, map_y = self._grid_x + flow[..., 0], self._grid_y + flow[..., 1]
        detail = self._warp(self._source, map_x, map_y) - self._warp(self._source_low, map_x, map_y)
        return np.clip(base + detail + 0.5, 0, 255).astype(np.uint8)

    @staticmethod
    def _warp(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
        return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def fused_frames(stream: Bitstream) -> Iterator[np.ndarray]:
    """The decoded frames of a stream with a base layer, one (H, W, 3) uint8 RGB frame at a
    time; each segment fuses with its own source image."""
    layer = stream.base
    if layer is None:
        raise ValueError("the stream has no base layer")
    header = stream.header
    upscaled = upscaled_frames(layer, header.frame_count, header.width, header.height)
    for (start, end, _), image in zip(stream.segments(), stream.source_images, strict=True):
        source = upscale(decode_image(image), header.width, header.height)
        fuser = DetailFuser(source, layer.width, layer.height)
        for _ in range(start, end):
            yield fuser.fuse(next(upscaled))
