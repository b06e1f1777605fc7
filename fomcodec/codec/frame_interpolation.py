"""Frames between frames: the facial frame interpolator applied to a stream of frames.

Used twice: by the decoder, to fill the frames the encoder sent no motion for (``motion_stride``
2, 4, 8...: the middle frame first, then recursively the halves), and by ``fomc interpolate``,
which doubles the frame rate of any video. Frames are (B, 3, H, W) float tensors in [0, 1].
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterable, Iterator

import torch

from fomcodec.errors import InputError
from fomcodec.fileio import check_output_path
from fomcodec.media.video_io import VideoOutput, iter_batches, probe_video, read_whole_frames
from fomcodec.runtime import autocast, bf16_supported, resolve_device
from fomcodec.tensors import frames_to_images, images_to_frames
from fomcodec.zoo import Interpolator, load_interpolator

DEFAULT_INTERPOLATOR = "ffi-flow"

Synthesize = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
InterpolatorSpec = str | os.PathLike | Interpolator


def is_power_of_two(value: int) -> bool:
    return value >= 1 and value & (value - 1) == 0


class MiddleFrameSynthesizer:
    """Callable ``(frame0, frame1) -> middle frame`` running a trained interpolator the fast
    way for its device: bf16 autocast (where the config asks for it and the hardware has it)
    and channels_last on the CPU."""

    def __init__(
        self,
        interpolator: InterpolatorSpec | None = None,
        device: torch.device | str = "cpu",
        bf16: bool | None = None,
    ) -> None:
        self.device = torch.device(device)
        if isinstance(interpolator, torch.nn.Module):
            model = interpolator.to(self.device).eval()
        else:
            model = load_interpolator(interpolator or DEFAULT_INTERPOLATOR, self.device)
        if self.device.type == "cpu":
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        wanted = model.config.bf16 if bf16 is None else bf16
        self.bf16 = wanted and bf16_supported(self.device)

    @torch.no_grad()
    def __call__(self, frame0: torch.Tensor, frame1: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cpu":
            frame0 = frame0.contiguous(memory_format=torch.channels_last)
            frame1 = frame1.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.bf16):
            middle = self.model(frame0, frame1)["frame"]
        return middle.float().clamp(0, 1)


def frames_between(
    first: torch.Tensor, second: torch.Tensor, stride: int, synthesize: Synthesize
) -> list[torch.Tensor]:
    """The ``stride - 1`` frames strictly between ``first`` and ``second`` (batches of equal
    size), in time order: the middle one, then each half recursively (``stride`` a power of
    two)."""
    if not is_power_of_two(stride):
        raise ValueError(f"the interpolator fills strides that are powers of two, not {stride}")
    if stride == 1:
        return []
    middle = synthesize(first, second)
    half = stride // 2
    return (
        frames_between(first, middle, half, synthesize)
        + [middle]
        + frames_between(middle, second, half, synthesize)
    )


def fill_frames(
    anchors: Iterable[torch.Tensor],
    stride: int | Iterable[int],
    total: int,
    synthesize: Synthesize,
) -> Iterator[torch.Tensor]:
    """Turn batches of anchor frames (frames 0, stride, 2*stride, ...) into batches of all
    ``total`` frames: in-between frames synthesised, frames after the last anchor holding it.
    ``stride`` may instead give the gap from each anchor to the next, in order."""
    gaps = itertools.repeat(stride) if isinstance(stride, int) else iter(stride)
    previous: torch.Tensor | None = None
    emitted = 0
    for batch in anchors:
        if not len(batch):
            continue
        if previous is None:
            starts, ends, out = batch[:-1], batch[1:], [batch[:1]]
        else:
            starts, ends, out = torch.cat([previous, batch[:-1]]), batch, []
        pair_gaps = list(itertools.islice(gaps, len(ends)))
        first = 0
        for gap, run in itertools.groupby(pair_gaps):
            last = first + len(list(run))
            middles = frames_between(starts[first:last], ends[first:last], gap, synthesize)
            steps = torch.stack(middles + [ends[first:last]], dim=1)  # (pairs, gap, 3, H, W)
            out.append(steps.flatten(0, 1))
            first = last
        previous = batch[-1:]
        frames = torch.cat(out)[: total - emitted]
        emitted += len(frames)
        if len(frames):
            yield frames
    if previous is not None and emitted < total:
        yield previous.expand(total - emitted, *previous.shape[1:])


def double_frame_rate(
    frames: Iterable[torch.Tensor], synthesize: Synthesize
) -> Iterator[torch.Tensor]:
    """Batches of frames at twice the rate: each frame followed by the middle frame to the
    next one; the last frame is repeated, so the clip keeps its duration."""
    previous: torch.Tensor | None = None
    for batch in frames:
        if not len(batch):
            continue
        sequence = batch if previous is None else torch.cat([previous, batch])
        if len(sequence) > 1:
            middles = synthesize(sequence[:-1], sequence[1:])
            yield torch.stack([sequence[:-1], middles], dim=1).flatten(0, 1)
        previous = sequence[-1:]
    if previous is not None:
        yield previous.expand(2, *previous.shape[1:])


def interpolate_file(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    interpolator: InterpolatorSpec | None = None,
    device: str | torch.device | None = "auto",
    batch_size: int = 4,
    max_frames: int | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    output: VideoOutput | None = None,
) -> tuple[int, int, float]:
    """Double the frame rate of video ``src`` into ``dst`` (written atomically, as ``output``
    says), at the input's own size; returns (input frames, output frames, seconds)."""
    started = time.perf_counter()
    check_output_path(dst, overwrite)
    info = probe_video(src)
    resolved = resolve_device(device)
    synthesize = MiddleFrameSynthesizer(interpolator, resolved)
    frames = (frame for _, frame in read_whole_frames(src, max_frames=max_frames))

    def tensors() -> Iterator[torch.Tensor]:
        for batch in iter_batches(frames, batch_size):
            if progress:
                progress(len(batch))
            yield frames_to_images(batch, resolved)

    written = 0
    writer = (output or VideoOutput()).writer(
        dst, info.fps * 2, (info.width, info.height), overwrite
    )
    with writer:
        for batch in double_frame_rate(tensors(), synthesize):
            writer.write(images_to_frames(batch))
            written += len(batch)
        if written == 0:
            raise InputError(f"{src}: the video has no frames")
    return written // 2, written, time.perf_counter() - started
