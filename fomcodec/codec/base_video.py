"""The AV1 base layer: every k-th frame at low resolution, coded with SVT-AV1 as it comes,
and decoded back to one upscaled frame per output frame.

::

    encoder  256x256 frame --every k-th, area-averaged to s x s--> SVT-AV1 (CRF, one keyframe,
             scene changes intra) --> packets (the stream's BASE chunk)
    decoder  packets --dav1d--> s x s frames --Lanczos to 256--> base frames (a frame the
             encoder dropped: blended linearly from its two neighbours)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import av
import cv2
import numpy as np

from fomcodec.codec.base_layer import (
    ADAPTIVE_SEGMENT_FRAMES,
    BASE_PRESET,
    DETAIL_FUSER,
    BaseLayerSettings,
)
from fomcodec.codec.bitstream import BaseLayer
from fomcodec.errors import BitstreamError, FomcError
from fomcodec.runtime import ordinary_scheduling

if TYPE_CHECKING:
    import torch

    from fomcodec.codec.frame_interpolation import Synthesize

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


def _midpoint(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    return (first + second) / 2


def _open_encoder(size: int, crf: int, rate: Fraction, threads: int) -> Any:
    """An SVT-AV1 encoder for ``size`` x ``size`` frames as the base layer codes them."""
    context: Any = av.CodecContext.create(BASE_ENCODER, "w")
    context.width = context.height = size
    context.pix_fmt = "yuv420p"
    context.time_base = 1 / rate
    context.framerate = rate
    context.colorspace = av.video.reformatter.Colorspace.ITU601
    context.color_range = av.video.reformatter.ColorRange.MPEG
    context.options = {
        "crf": str(crf),
        "preset": BASE_PRESET,
        # one keyframe, then intra frames only where SVT-AV1 sees a scene change
        "svtav1-params": f"keyint=-1:scd=1:lp={threads}",
    }
    with ordinary_scheduling():
        context.open()
    return context


def _to_yuv(small: np.ndarray, pts: int) -> av.VideoFrame:
    video = av.VideoFrame.from_ndarray(np.ascontiguousarray(small), format="rgb24")
    video = video.reformat(format="yuv420p")
    video.pts = pts
    return video


def trial_code(frames: Sequence[np.ndarray], crf: int) -> list[np.ndarray]:
    """``frames`` (small RGB) coded as one short base layer sequence at ``crf`` and decoded
    back: what the decoder would see of them, near enough."""
    size = frames[0].shape[0]
    context = _open_encoder(size, crf, Fraction(25), 1)
    packets = [bytes(p) for i, f in enumerate(frames) for p in context.encode(_to_yuv(f, i))]
    packets += [bytes(p) for p in context.encode(None)]
    layer = BaseLayer("av1", "detail", size, size, 1, len(frames), packets)
    return list(base_frames(layer))


def segment_psnr(
    frames: np.ndarray,
    divisor: int,
    crf: int,
    previous: np.ndarray | None = None,
    following: np.ndarray | None = None,
    synthesize: Synthesize | None = None,
) -> float:
    """PSNR (dB, over all its frames) of a segment of small frames as the decoder would see
    it at ``divisor`` (a power of two): every ``divisor``-th frame coded at ``crf`` by
    :func:`trial_code` (after ``previous``, the last frame coded before the segment, and
    followed by ``following``, the next segment's first frame), the frames between filled
    from the coded ones as the decoder fills them (``fill_frames``: by ``synthesize``, or
    blended linearly without it); without ``following``, the frames after the last coded one
    hold it."""
    import torch

    from fomcodec.codec.frame_interpolation import fill_frames

    sequence = [*([] if previous is None else [previous]), *frames[::divisor]]
    sequence += [] if following is None else [following]
    coded = trial_code(sequence, crf)[0 if previous is None else 1 :]
    anchors = torch.from_numpy(np.stack(coded)).permute(0, 3, 1, 2).float().div_(255)
    made = torch.cat(list(fill_frames([anchors], divisor, len(frames), synthesize or _midpoint)))
    pixels = made.mul_(255).round_().clamp_(0, 255).permute(0, 2, 3, 1).numpy()
    mean = float(np.square(frames.astype(np.float32) - pixels).mean())
    return math.inf if mean == 0 else 10 * math.log10(255.0**2 / mean)


def segment_divisor(
    frames: np.ndarray,
    largest: int,
    min_db: float,
    crf: int,
    previous: np.ndarray | None = None,
    following: np.ndarray | None = None,
    synthesize: Synthesize | None = None,
) -> int:
    """The largest power-of-two divisor up to ``largest`` at which :func:`segment_psnr` is
    ``min_db`` or better (1 when none is)."""
    divisor = largest
    while divisor > 1:
        if segment_psnr(frames, divisor, crf, previous, following, synthesize) >= min_db:
            break
        divisor //= 2
    return divisor


class BaseLayerWriter:
    """Codes every ``fps_divisor``-th frame it is given into AV1 packets, as they come; with
    ``settings.adapt_db``, a segment of :data:`ADAPTIVE_SEGMENT_FRAMES` at a time, at the
    divisor :func:`segment_divisor` picks for it (dropped frames made by ``synthesize``, the
    decoder's frame interpolator, or blended without it)."""

    def __init__(
        self,
        settings: BaseLayerSettings,
        fps: Fraction,
        frame_size: int,
        threads: int = 1,
        synthesize: Synthesize | None = None,
    ) -> None:
        settings.check(frame_size)
        if BASE_ENCODER not in av.codecs_available:
            raise FomcError(f"PyAV's FFmpeg has no {BASE_ENCODER} encoder for the base layer")
        self.settings = settings
        rate = Fraction(fps).limit_denominator(1_000_000) / settings.fps_divisor
        self._context = _open_encoder(settings.size, settings.crf, rate, threads)
        self._packets: list[bytes] = []
        self._seen = 0
        self._coded = 0
        self._synthesize = synthesize
        self._last_coded: np.ndarray | None = None
        self._pending: list[np.ndarray] = []
        self._divisors: list[int] = []

    def add(self, frame: np.ndarray) -> None:
        """Offer the next (S, S, 3) uint8 RGB frame; every k-th one is coded (with an
        adaptive frame rate, once its segment and the next frame are in)."""
        index, self._seen = self._seen, self._seen + 1
        size, min_db = self.settings.size, self.settings.adapt_db
        if min_db is None:
            if index % self.settings.fps_divisor == 0:
                self._code(downscale(frame, size, size))
            return
        self._pending.append(downscale(frame, size, size))
        if len(self._pending) > ADAPTIVE_SEGMENT_FRAMES:
            self._code_segment(min_db)

    def _code_segment(self, min_db: float) -> None:
        """Code the first pending segment at the divisor :func:`segment_divisor` picks (the
        next frame, if pending, is where its last dropped frames lead)."""
        segment = np.stack(self._pending[:ADAPTIVE_SEGMENT_FRAMES])
        following = self._pending[ADAPTIVE_SEGMENT_FRAMES:][:1]
        divisor = segment_divisor(
            segment,
            self.settings.fps_divisor,
            min_db,
            self.settings.crf,
            self._last_coded,
            following[0] if following else None,
            self._synthesize,
        )
        self._divisors.append(divisor)
        for small in segment[::divisor]:
            self._code(small)
        del self._pending[:ADAPTIVE_SEGMENT_FRAMES]

    def _code(self, small: np.ndarray) -> None:
        self._collect(self._context.encode(_to_yuv(small, self._coded)))
        self._coded += 1
        self._last_coded = small

    def _collect(self, packets: Any) -> None:
        self._packets.extend(bytes(packet) for packet in packets)

    def finish(self) -> BaseLayer:
        """Flush the encoder; the coded layer."""
        min_db = self.settings.adapt_db
        while self._pending and min_db is not None:
            self._code_segment(min_db)
        self._collect(self._context.encode(None))
        adaptive = min_db is not None
        return BaseLayer(
            codec="av1",
            fuser="detail" if self.settings.fuser == DETAIL_FUSER else "learned",
            width=self.settings.size,
            height=self.settings.size,
            fps_divisor=max(self._divisors) if adaptive else self.settings.fps_divisor,
            frame_count=self._coded,
            packets=self._packets,
            segment_frames=ADAPTIVE_SEGMENT_FRAMES if adaptive else 0,
            segment_divisors=tuple(self._divisors),
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


def fill_dropped(
    frames: Iterable[np.ndarray], coded: Sequence[int], frame_count: int
) -> Iterator[np.ndarray]:
    """``frame_count`` float32 frames from the given ones, frames ``coded`` (ascending, from
    0): the frames between two given ones blended linearly, those after the last given one
    holding it."""
    previous: np.ndarray | None = None
    last = -1
    for frame, index in zip(frames, coded, strict=False):
        current = frame.astype(np.float32)
        if previous is not None:
            gap = index - last
            for j in range(1, gap):
                yield previous + (current - previous) * (j / gap)
        yield current
        previous, last = current, index
    if previous is not None:
        for _ in range(last + 1, frame_count):
            yield previous


def upscaled_frames(
    layer: BaseLayer, frame_count: int, width: int, height: int
) -> Iterator[np.ndarray]:
    """One float32 (height, width, 3) base frame per output frame (see :func:`fill_dropped`)."""
    upscaled = (upscale(small, width, height) for small in base_frames(layer))
    return fill_dropped(upscaled, layer.coded_frames(frame_count), frame_count)
