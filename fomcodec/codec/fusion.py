"""Fusion of base frames with the source images' detail.

::

    base layer (every k-th frame, small) --frames in between: the frame interpolator at the
      base size (k a power of two; else blended linearly)--> --upscale--> base frames
    each base frame B, with its segment's source image S:
        S_low = S through the same down- and up-scaling as the base frames
        flow  = DIS optical flow from B to S_low (both grey; for a learned fuser whose
                config has flow_scale k, measured at 1/k of the size and scaled up)
        W, W_low = warp(S, flow), warp(S_low, flow)
        "detail" fuser:  out = B + W - W_low                       (no network)
        learned fuser:   out = B + W - W_low + CNN(B, W - W_low, B - W_low)
                         (:class:`~fomcodec.nets.fuser.BaseLayerFuser`)

The base frame gives colour and position, the source image what the small frame lost.
Measured in docs/base-layer.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import cv2
import numpy as np

from fomcodec.codec.base_video import base_frames, downscale, upscale, upscaled_frames
from fomcodec.codec.bitstream import BaseLayer, Bitstream
from fomcodec.codec.image_codec import decode_image
from fomcodec.media.video_io import iter_batches

if TYPE_CHECKING:
    import torch

    from fomcodec.codec.frame_interpolation import Synthesize
    from fomcodec.nets.fuser import BaseLayerFuser


class SourceWarp:
    """One source image, warped onto base frames by dense optical flow: the source and its
    own low-resolution version (through the base layer's down- and up-scaling), warped the
    same way; their difference is the detail the base frame lacks. ``flow_scale`` > 1
    measures the flow on frames that much smaller (area-averaged) and scales it back up
    (bilinear): about 3 times faster at 2, and what a fuser trained on it expects."""

    def __init__(
        self, source: np.ndarray, base_width: int, base_height: int, flow_scale: int = 1
    ) -> None:
        height, width = source.shape[:2]
        low = upscale(downscale(source, base_width, base_height), width, height)
        self._source = source.astype(np.float32)
        self._source_low = low.astype(np.float32)
        self._flow_size = (width // flow_scale, height // flow_scale)
        self._flow_scale = flow_scale
        self._source_low_grey = self._flow_frame(low)
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self._grid_x, self._grid_y = np.meshgrid(
            np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)
        )

    def _flow_frame(self, image: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if self._flow_scale == 1:
            return grey
        return cv2.resize(grey, self._flow_size, interpolation=cv2.INTER_AREA)

    def warp(self, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(warped source, warped low-resolution source), float32 (H, W, 3), for one float32
        base frame at the source's size."""
        flow = self._flow.calc(self._flow_frame(to_uint8(base)), self._source_low_grey, None)
        if self._flow_scale > 1:
            size = self._grid_x.shape[::-1]
            flow = cv2.resize(flow, size, interpolation=cv2.INTER_LINEAR) * self._flow_scale
        map_x, map_y = self._grid_x + flow[..., 0], self._grid_y + flow[..., 1]
        return self._remap(self._source, map_x, map_y), self._remap(self._source_low, map_x, map_y)

    @staticmethod
    def _remap(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
        return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


class ParallelSourceWarp:
    """:class:`SourceWarp` of one source on several threads (OpenCV's DIS flow runs on one
    core and releases the GIL; a DIS object is not shared between threads): each worker
    warps every ``workers``-th frame of a batch with its own copy. Same output as one
    :class:`SourceWarp`."""

    def __init__(
        self,
        source: np.ndarray,
        base_width: int,
        base_height: int,
        flow_scale: int,
        pool: ThreadPoolExecutor,
        workers: int,
    ) -> None:
        self._warps = [
            SourceWarp(source, base_width, base_height, flow_scale) for _ in range(workers)
        ]
        self._pool = pool

    def warp_batch(self, bases: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`SourceWarp.warp` of each base frame, in order."""
        n = len(self._warps)
        jobs = [
            self._pool.submit(_warp_each, warp, bases[k::n]) for k, warp in enumerate(self._warps)
        ]
        parts = [job.result() for job in jobs]
        return [parts[i % n][i // n] for i in range(len(bases))]


def _warp_each(warp: SourceWarp, bases: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [warp.warp(base) for base in bases]


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Round and clip float pixel values (0..255) to uint8."""
    return np.clip(frames + 0.5, 0, 255).astype(np.uint8)


def fuse_batch(
    base: np.ndarray,
    warped: np.ndarray,
    warped_low: np.ndarray,
    network: BaseLayerFuser | None = None,
    bf16: bool = False,
) -> np.ndarray:
    """Fuse (N, H, W, 3) float32 base frames with the warped source: ``network`` None is the
    ``detail`` fuser (``base + warped - warped_low``), else the learned one, its convolutions
    in bf16 when ``bf16`` (channels-last, on the network's device; the sums stay float32).
    uint8 out."""
    if network is None:
        return to_uint8(base + warped - warped_low)
    import torch

    from fomcodec.runtime import autocast

    device = next(network.parameters()).device

    def tensor(x: np.ndarray) -> torch.Tensor:
        nchw = torch.from_numpy(x).to(device).permute(0, 3, 1, 2) / 255
        return nchw.contiguous(memory_format=torch.channels_last)

    with torch.inference_mode(), autocast(device, bf16):
        out = network(tensor(base), tensor(warped), tensor(warped_low)).float()
        pixels = out.mul_(255).add_(0.5).clamp_(0, 255).to(torch.uint8)  # as to_uint8 does
    return pixels.permute(0, 2, 3, 1).cpu().numpy()


def interpolated_base_frames(
    layer: BaseLayer, frame_count: int, width: int, height: int, synthesize: Synthesize
) -> Iterator[np.ndarray]:
    """One float32 (height, width, 3) base frame per output frame: the frames the encoder
    dropped made by ``synthesize`` between the decoded ones at the base size (the middle
    one, then each half: every gap a power of two), then every frame upscaled as
    :func:`upscaled_frames` does (coded frames come out the same); frames after the last
    coded one hold it."""
    import torch

    from fomcodec.codec.frame_interpolation import fill_frames

    def tensors() -> Iterator[torch.Tensor]:
        for batch in iter_batches(base_frames(layer), 8):
            yield torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255)

    gaps = np.diff(np.asarray(layer.coded_frames(frame_count))).tolist()
    for batch in fill_frames(tensors(), gaps, frame_count, synthesize):
        for image in to_uint8(batch.mul(255).permute(0, 2, 3, 1).numpy()):
            yield upscale(image, width, height).astype(np.float32)


def decoded_base_frames(
    layer: BaseLayer,
    frame_count: int,
    width: int,
    height: int,
    synthesize: Synthesize | None = None,
) -> Iterator[np.ndarray]:
    """The upscaled float32 base frame of every output frame, as the decoder fuses them: the
    dropped ones made by ``synthesize`` (:func:`interpolated_base_frames`) where
    :func:`interpolates_dropped_frames`, else blended (:func:`upscaled_frames`)."""
    if synthesize is not None and interpolates_dropped_frames(layer):
        return interpolated_base_frames(layer, frame_count, width, height, synthesize)
    return upscaled_frames(layer, frame_count, width, height)


def interpolates_dropped_frames(layer: BaseLayer) -> bool:
    """Whether a frame interpolator makes the frames this base layer drops: it does when
    there are some, and every frame-rate divisor is a power of two (middle, then halves)."""
    from fomcodec.codec.frame_interpolation import is_power_of_two

    divisors = layer.segment_divisors or (layer.fps_divisor,)
    return layer.fps_divisor > 1 and all(is_power_of_two(d) for d in divisors)


def fused_frames(
    stream: Bitstream,
    network: BaseLayerFuser | None = None,
    batch_size: int = 8,
    bf16: bool = False,
    synthesize: Synthesize | None = None,
) -> Iterator[np.ndarray]:
    """The decoded frames of a stream with a base layer, as (N, H, W, 3) uint8 RGB batches
    of up to ``batch_size``; each segment fuses with its own source image (``network``: the
    stream's learned fuser, None for the ``detail`` fuser; ``bf16``: see :func:`fuse_batch`;
    the flow is measured as the fuser was trained, at its config's ``flow_scale``).
    ``synthesize`` (a frame interpolator) makes the frames the base layer dropped when its
    frame-rate divisor is a power of two; without it they are blended linearly. The flows
    run on as many threads as torch has (:class:`ParallelSourceWarp`)."""
    layer = stream.base
    if layer is None:
        raise ValueError("the stream has no base layer")
    import torch

    flow_scale = network.config.flow_scale if network is not None else 1
    header = stream.header
    upscaled = decoded_base_frames(
        layer, header.frame_count, header.width, header.height, synthesize
    )
    workers = max(1, min(batch_size, torch.get_num_threads()))
    with ThreadPoolExecutor(workers) as pool:
        for (start, end, _), image in zip(stream.segments(), stream.source_images, strict=True):
            source = upscale(decode_image(image), header.width, header.height)
            warp = ParallelSourceWarp(source, layer.width, layer.height, flow_scale, pool, workers)
            for first in range(start, end, batch_size):
                bases = [next(upscaled) for _ in range(first, min(first + batch_size, end))]
                warps = warp.warp_batch(bases)
                yield fuse_batch(
                    np.stack(bases),
                    np.stack([w for w, _ in warps]),
                    np.stack([low for _, low in warps]),
                    network,
                    bf16,
                )
