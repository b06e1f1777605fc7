"""A look at the result: original | decoded side by side, as a looping GIF or a video, and an
optional PNG strip of a few frames (originals above, decoded below)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from fomcodec.codec import bitstream as bs
from fomcodec.codec.pipeline import Decoder, Encoder, ModelSpec
from fomcodec.errors import FomcError, InputError
from fomcodec.eval.metrics import psnr_rgb
from fomcodec.fileio import atomic_output, check_output_path
from fomcodec.media.crop import CropBox
from fomcodec.media.video_io import VideoWriter, probe_video, read_frames

GAP = 4  # pixels of white between the two halves
PREVIEW_SUFFIXES = (".gif", ".mp4", ".mov", ".mkv")


@dataclass
class PreviewStats:
    """What the preview shows: frames, the stream's size and the decoded quality."""

    frames: int
    fps: Fraction
    stream_bytes: int
    psnr: float

    def summary(self) -> str:
        kbps = self.stream_bytes * 8 / 1000 / (self.frames / float(self.fps))
        return (
            f"preview of {self.frames} frames: stream {self.stream_bytes} B "
            f"({kbps:.2f} kbit/s), decoded PSNR {self.psnr:.2f} dB against the original"
        )


def side_by_side(left: np.ndarray, right: np.ndarray, gap: int = GAP) -> np.ndarray:
    """(N, H, W, 3) stacks joined left | right with a white gap: (N, H, 2W + gap, 3)."""
    if left.shape != right.shape:
        raise ValueError(f"stacks differ in shape: {left.shape} vs {right.shape}")
    spacer = np.full((*left.shape[:2], gap, 3), 255, np.uint8)
    return np.concatenate([left, spacer, right], axis=2)


def frame_strip(top: np.ndarray, bottom: np.ndarray, count: int, gap: int = GAP) -> np.ndarray:
    """``count`` evenly spaced frames in one image: ``top``'s in the first row, ``bottom``'s
    below."""
    index = np.linspace(0, len(top) - 1, min(count, len(top))).round().astype(int)

    def row(frames: np.ndarray) -> np.ndarray:
        spacer = np.full((frames.shape[1], gap, 3), 255, np.uint8)
        parts = [p for i in index for p in (frames[i], spacer)][:-1]
        return np.concatenate(parts, axis=1)

    upper, lower = row(top), row(bottom)
    return np.concatenate([upper, np.full((gap, upper.shape[1], 3), 255, np.uint8), lower])


def write_strip(
    top: np.ndarray,
    bottom: np.ndarray,
    dst: str | os.PathLike,
    count: int = 6,
    overwrite: bool = False,
) -> Path:
    """Write :func:`frame_strip` of ``top`` over ``bottom`` as a PNG, atomically."""
    with atomic_output(dst, overwrite) as tmp:
        Image.fromarray(frame_strip(top, bottom, count)).save(tmp, format="PNG")
    return Path(dst)


def _check_preview_path(path: Path) -> None:
    if path.suffix.lower() not in PREVIEW_SUFFIXES:
        raise FomcError(f"{path}: a preview is {', '.join(PREVIEW_SUFFIXES)}")


def write_preview(
    frames: np.ndarray, fps: Fraction, dst: str | os.PathLike, overwrite: bool = False
) -> Path:
    """Write (N, H, W, 3) frames as a looping GIF (``.gif``) or an H.264 video, atomically."""
    path = Path(dst)
    _check_preview_path(path)
    if path.suffix.lower() != ".gif":
        with VideoWriter(path, fps, (frames.shape[2], frames.shape[1]), overwrite) as writer:
            writer.write(frames)
        return path
    images = [Image.fromarray(f) for f in frames]
    with atomic_output(path, overwrite) as tmp:
        images[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            loop=0,
            duration=round(1000 / float(fps)),
            optimize=False,
        )
    return path


def make_preview(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    model: ModelSpec | None = None,
    device: str = "auto",
    crop: CropBox | None = None,
    max_frames: int = 100,
    strip: str | os.PathLike | None = None,
    strip_frames: int = 6,
    overwrite: bool = False,
    motion_stride: int = bs.DEFAULT_MOTION_STRIDE,
    decoder_options: dict | None = None,
    progress: Callable[[int], None] | None = None,
) -> PreviewStats:
    """Encode and decode the first ``max_frames`` frames of ``src`` with the codec (in memory),
    and write original | decoded to ``dst`` (and the frame strip to ``strip``, a PNG)."""
    _check_preview_path(check_output_path(dst, overwrite))
    if strip is not None:
        check_output_path(strip, overwrite)
    info = probe_video(src)
    encoder = Encoder(model, device=device, motion_stride=motion_stride)
    size = encoder.model.config.image_size
    frames = list(read_frames(src, size, crop, max_frames))
    if not frames:
        raise InputError(f"{src}: the video has no frames")
    original = np.stack(frames)
    stream = encoder.encode_frames(iter(original), info.fps, progress)
    data = bs.pack(stream)
    decoder = Decoder(encoder.model, device=device, **(decoder_options or {}))
    decoded = np.concatenate(list(decoder.decode_stream(bs.unpack(data), progress)))
    if len(decoded) != len(original):  # --no-interpolate: compare the sent frames
        original = original[:: stream.header.motion_stride][: len(decoded)]
    write_preview(
        side_by_side(original, decoded), decoder.output_fps(stream.header), dst, overwrite
    )
    if strip is not None:
        write_strip(original, decoded, strip, strip_frames, overwrite)
    return PreviewStats(
        len(decoded),
        decoder.output_fps(stream.header),
        len(data),
        float(psnr_rgb(original, decoded).mean()),
    )
