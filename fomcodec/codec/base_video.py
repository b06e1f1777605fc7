"""The AV1 base layer: every k-th frame at low resolution, coded with SVT-AV1 as it comes,
and decoded back to one upscaled frame per output frame.

::

    encoder  256x256 frame --every k-th, area-averaged to s x s--> SVT-AV1 (CRF, one keyframe,
             scene changes intra) --> packets (the stream's BASE chunk)
    decoder  packets --dav1d--> s x s frames --Lanczos to 256--> base frames (a frame the
             encoder dropped: blended linearly from its two neighbours)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import Any

import av
import cv2
import numpy as np

from fomcodec.codec.base_layer import BASE_PRESET, DETAIL_FUSER, BaseLayerSettings
from fomcodec.codec.bitstream import BaseLayer
from fomcodec.errors import BitstreamError, FomcError
from fomcodec.runtime import ordinary_scheduling

BASE_ENCODER, BASE_DECODER = "libsvtav1", "libdav1d"


def downscale(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area-average an RGB frame to the base layer's size."""
    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)


def upscale(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Lanczos-resize a base frame back to the output size."""
    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_LANCZOS4)


class BaseLayerWriter:
    """Codes every ``fps_divisor``-th frame it is given into AV1 packets, as they come."""

    def __init__(
        self, settings: BaseLayerSettings, fps: Fraction, frame_size: int, threads: int = 1
    ) -> None:
        settings.check(frame_size)
        if BASE_ENCODER not in av.codecs_available:
            raise FomcError(f"PyAV's FFmpeg has no {BASE_ENCODER} encoder for the base layer")
        self.settings = settings
        rate = Fraction(fps).limit_denominator(1_000_000) / settings.fps_divisor
        context: Any = av.CodecContext.create(BASE_ENCODER, "w")
        context.width = context.height = settings.size
        context.pix_fmt = "yuv420p"
        context.time_base = 1 / rate
        context.framerate = rate
        context.colorspace = av.video.reformatter.Colorspace.ITU601
        context.color_range = av.video.reformatter.ColorRange.MPEG
        context.options = {
            "crf": str(settings.crf),
            "preset": BASE_PRESET,
            # one keyframe, then intra frames only where SVT-AV1 sees a scene change
            "svtav1-params": f"keyint=-1:scd=1:lp={threads}",
        }
        with ordinary_scheduling():
            context.open()
        self._context = context
        self._packets: list[bytes] = []
        self._seen = 0
        self._coded = 0

    def add(self, frame: np.ndarray) -> None:
        """Offer the next (S, S, 3) uint8 RGB frame; every k-th one is coded."""
        index, self._seen = self._seen, self._seen + 1
        if index % self.settings.fps_divisor:
            return
        small = np.ascontiguousarray(downscale(frame, self.settings.size, self.settings.size))
        video = av.VideoFrame.from_ndarray(small, format="rgb24").reformat(format="yuv420p")
        video.pts = self._coded
        self._coded += 1
        self._collect(self._context.encode(video))

    def _collect(self, packets: Any) -> None:
        self._packets.extend(bytes(packet) for packet in packets)

    def finish(self) -> BaseLayer:
        """Flush the encoder; the coded layer."""
        self._collect(self._context.encode(None))
        return BaseLayer(
            codec="av1",
            fuser="detail" if self.settings.fuser == DETAIL_FUSER else "learned",
            width=self.settings.size,
            height=self.settings.size,
            fps_divisor=self.settings.fps_divisor,
            frame_count=self._coded,
            packets=self._packets,
        )


def base_frames(layer: BaseLayer) -> Iterator[np.ndarray]:
    """Decode the layer's packets: its ``frame_count`` small RGB frames, one at a time.

    Raises:
        BitstreamError: the packets do not decode, or decode to the wrong number or size of
            frames.
    """
    context: Any = av.CodecContext.create(BASE_DECODER, "r")
    decoded = 0

    def take(frames: Any) -> Iterator[np.ndarray]:
        nonlocal decoded
        for frame in frames:
            if (frame.width, frame.height) != (layer.width, layer.height):
                raise BitstreamError(
                    f"base layer frame is {frame.width}x{frame.height}, the chunk says "
                    f"{layer.width}x{layer.height}"
                )
            decoded += 1
            if decoded > layer.frame_count:
                break
            yield frame.to_ndarray(format="rgb24")

    try:
        for packet in layer.packets:
            yield from take(context.decode(av.Packet(packet)))
        yield from take(context.decode(None))
    except av.FFmpegError as exc:
        raise BitstreamError(f"the base layer does not decode: {exc}") from None
    if decoded != layer.frame_count:
        raise BitstreamError(
            f"the base layer decodes to {decoded} frames, the chunk says {layer.frame_count}"
        )


def fill_dropped(frames: Iterable[np.ndarray], step: int, frame_count: int) -> Iterator[np.ndarray]:
    """``frame_count`` float32 frames from every ``step``-th one: the frames between two
    given ones blended linearly, those after the last given one holding it."""
    previous: np.ndarray | None = None
    produced = 0
    for frame in frames:
        current = frame.astype(np.float32)
        if previous is not None:
            for j in range(1, step):
                yield previous + (current - previous) * (j / step)
            produced += step - 1
        yield current
        produced += 1
        previous = current
    while previous is not None and produced < frame_count:
        yield previous
        produced += 1


def upscaled_frames(
    layer: BaseLayer, frame_count: int, width: int, height: int
) -> Iterator[np.ndarray]:
    """One float32 (height, width, 3) base frame per output frame (see :func:`fill_dropped`)."""
    upscaled = (upscale(small, width, height) for small in base_frames(layer))
    return fill_dropped(upscaled, layer.fps_divisor, frame_count)
