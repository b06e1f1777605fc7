"""Reading and writing ordinary video files with PyAV.

Reading streams: :func:`read_frames` decodes one frame at a time, turns it into RGB
(``to_ndarray(format="rgb24")`` handles yuv420p, yuvj, 10-bit and odd sizes), corrects
display rotation (the container's display matrix, in quarter turns; flips are ignored) and
non-square pixels (the width is rescaled to the display aspect), then crops a square and
resizes it. Crop boxes and :class:`VideoInfo` sizes are in these display pixels. Timestamps
are ignored: frames come out in presentation order at the stream's average rate.
:func:`read_whole_frames` yields every n-th frame uncropped (optionally shrunk), for face
detection.

Every problem with an input file is an :class:`~fomcodec.errors.InputError` with a one-line
message naming the file; a still image (PNG, JPEG, ...) is refused as "not a video". Errors
in the frame data surface where the decoder meets them, so :func:`read_frames` may yield
some frames first; a file cut exactly between frames cannot be told from a shorter one.

Writing: :class:`VideoWriter` encodes RGB frames into a temporary file beside the target
and moves it into place only when its ``with`` block ends cleanly. The PyAV 18.1 wheel
(FFmpeg 8) used here ships libx264, libx264rgb, libx265, libvpx-vp9, mpeg4 and ffv1, but
not libopenh264 or libaom-av1. Encoders, first available wins:

- lossy (default): ``libx264`` (yuv420p, CRF 18, preset medium; yuv444p for odd sizes),
  else ``libopenh264`` (high bit rate), else ``mpeg4`` (qscale 2);
- ``lossless=True``: ``libx264rgb`` at CRF 0 (exact RGB; decoders that play High 4:4:4
  are needed), else ``ffv1``.

Lossy output is BT.601, limited range, tagged as such.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import av
import numpy as np

from fomcodec.errors import FomcError, InputError
from fomcodec.fileio import atomic_output, check_output_path
from fomcodec.media.crop import CropBox, CropSchedule, centre_square, crop_and_resize

DEFAULT_FPS = Fraction(25)
LOSSY_ENCODERS = ("libx264", "libopenh264", "mpeg4")
LOSSLESS_ENCODERS = ("libx264rgb", "ffv1")
_QP2LAMBDA = 118  # FFmpeg's FF_QP2LAMBDA: global_quality is a quantiser times this
_CONTAINER_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


@dataclass(frozen=True)
class VideoInfo:
    """What a video file declares, with sizes as :func:`read_frames` sees them.

    ``width``/``height`` are after rotation and pixel-aspect correction; ``frame_count`` and
    ``duration`` are None where the container does not say; ``rotation`` is the display
    rotation applied, counter-clockwise degrees in {0, 90, 180, 270}.
    """

    width: int
    height: int
    fps: Fraction
    frame_count: int | None
    duration: float | None
    rotation: int = 0
    start_time: float = 0.0  # presentation time of the first frame, seconds


def _describe(err: BaseException) -> str:
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return " ".join(str(text).split())


def _is_still_image(container: av.container.InputContainer) -> bool:
    names = container.format.name.split(",")
    return any(name == "image2" or name.endswith("_pipe") for name in names)


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


@contextlib.contextmanager
def _open_video(path: str | os.PathLike) -> Iterator[tuple[Any, Any]]:
    """Open ``path`` and pick its video stream, turning every failure into InputError."""
    source = Path(path)
    if not source.exists():
        raise InputError(f"{source}: no such file")
    if source.is_dir():
        raise InputError(f"{source}: is a directory, not a video file")
    try:
        container = av.open(str(source), mode="r", metadata_errors="replace")
    except (av.FFmpegError, OSError) as err:
        raise InputError(f"{source}: not a readable video ({_describe(err)})") from None
    try:
        if _is_still_image(container):
            raise InputError(f"{source}: a still image, not a video")
        stream = _video_stream(container)
        if stream is None:
            raise InputError(f"{source}: not a video (no video stream)")
        # Frame threading would be faster but swallows decoding errors (truncated files).
        stream.thread_type = "SLICE"
        yield container, stream
    finally:
        container.close()


def _decode(container: Any, stream: Any, source: Path) -> Iterator[av.VideoFrame]:
    """Decoded frames of ``stream``; InputError on damaged data or when there are none."""
    count = 0
    frames = container.decode(stream)
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            break
        except (av.FFmpegError, OSError) as err:
            raise InputError(
                f"{source}: damaged or truncated video data after {count} frames ({_describe(err)})"
            ) from None
        count += 1
        yield frame
    if count == 0:
        raise InputError(f"{source}: no decodable video frames")


def _display_width(stream: Any, width: int) -> int:
    aspect = stream.sample_aspect_ratio
    if not aspect or aspect == 1:
        return width
    return max(1, round(width * aspect))


def _quarter_turns(rotation: int) -> int:
    return round(rotation / 90) % 4


def _to_rgb(frame: av.VideoFrame, display_width: int) -> np.ndarray:
    """The frame as an upright (H, W, 3) uint8 RGB array in display pixels."""
    if display_width == frame.width:
        rgb = frame.to_ndarray(format="rgb24")
    else:
        rgb = frame.to_ndarray(
            format="rgb24", width=display_width, height=frame.height, interpolation="LANCZOS"
        )
    turns = _quarter_turns(frame.rotation)
    return np.rot90(rgb, turns) if turns else rgb


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Describe a video file; decodes its first frame to check it can be read."""
    source = Path(path)
    with _open_video(source) as (container, stream):
        fps = stream.average_rate or stream.guessed_rate or DEFAULT_FPS
        if stream.duration and stream.time_base:
            duration: float | None = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        else:
            duration = None
        first = next(_decode(container, stream, source))
        width = _display_width(stream, first.width)
        rotation = _quarter_turns(first.rotation) * 90
        height = first.height
        if rotation in (90, 270):
            width, height = height, width
        return VideoInfo(
            width=width,
            height=height,
            fps=Fraction(fps),
            frame_count=stream.frames or None,
            duration=duration,
            rotation=rotation,
            start_time=float(first.time or 0.0),
        )


def read_frames(
    path: str | os.PathLike,
    size: int = 256,
    crop: CropBox | CropSchedule | None = None,
    max_frames: int | None = None,
) -> Iterator[np.ndarray]:
    """Yield the video's frames one by one as (size, size, 3) uint8 RGB arrays.

    ``crop`` is a square in display pixels (None: the centre square of each frame; parts
    past the edge repeat edge pixels), or one per shot; ``max_frames`` stops early. Only one
    decoded frame is held at a time. File errors (InputError) are raised on iteration, not by
    this call.
    """
    if size < 1:
        raise ValueError(f"size must be positive, not {size}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be positive or None, not {max_frames}")
    return _read_frames(Path(path), size, crop, max_frames)


def _read_frames(
    source: Path, size: int, crop: CropBox | CropSchedule | None, max_frames: int | None
) -> Iterator[np.ndarray]:
    with _open_video(source) as (container, stream):
        for index, frame in enumerate(_decode(container, stream, source)):
            rgb = _to_rgb(frame, _display_width(stream, frame.width))
            box = crop.box_at(index) if isinstance(crop, CropSchedule) else crop
            box = box or centre_square(rgb.shape[1], rgb.shape[0])
            try:
                out = crop_and_resize(rgb, box, size)
            except ValueError as err:
                raise InputError(f"{source}: {err}") from None
            yield out
            if max_frames is not None and index + 1 >= max_frames:
                return


def read_whole_frames(
    path: str | os.PathLike,
    max_side: int | None = None,
    every: int = 1,
    max_frames: int | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, frame)`` for every ``every``-th frame, whole and uncropped.

    Frames are (H, W, 3) uint8 RGB in display orientation and aspect (as :func:`read_frames`
    sees them), shrunk (area averaging) so the longer side is at most ``max_side``; a
    position in them maps to display pixels by ``VideoInfo.width / W``. Frames that are
    skipped are decoded but never converted. ``max_frames`` caps the frames yielded.
    File errors (InputError) are raised on iteration.
    """
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be positive or None, not {max_side}")
    if every < 1:
        raise ValueError(f"every must be positive, not {every}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be positive or None, not {max_frames}")
    return _read_whole_frames(Path(path), max_side, every, max_frames)


def _read_whole_frames(
    source: Path, max_side: int | None, every: int, max_frames: int | None
) -> Iterator[tuple[int, np.ndarray]]:
    yielded = 0
    with _open_video(source) as (container, stream):
        for index, frame in enumerate(_decode(container, stream, source)):
            if index % every:
                continue
            width, height = _display_width(stream, frame.width), frame.height
            scale = 1.0 if max_side is None else min(1.0, max_side / max(width, height))
            if scale < 1.0:
                rgb = frame.to_ndarray(
                    format="rgb24",
                    width=max(1, round(width * scale)),
                    height=max(1, round(height * scale)),
                    interpolation="AREA",
                )
                turns = _quarter_turns(frame.rotation)
                rgb = np.rot90(rgb, turns) if turns else rgb
            else:
                rgb = _to_rgb(frame, width)
            yield index, np.ascontiguousarray(rgb)
            yielded += 1
            if max_frames is not None and yielded >= max_frames:
                return


def iter_batches(frames: Iterable[np.ndarray], batch_size: int) -> Iterator[np.ndarray]:
    """Group frames into (B, H, W, 3) stacks of ``batch_size``; the last may be shorter."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, not {batch_size}")
    batch: list[np.ndarray] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == batch_size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


def has_encoder(name: str) -> bool:
    """Whether PyAV's FFmpeg can encode with ``name``."""
    try:
        av.codec.Codec(name, "w")
    except (av.FFmpegError, ValueError):
        return False
    return True


def pick_encoder(lossless: bool = False) -> str:
    """The first encoder of :data:`LOSSLESS_ENCODERS` / :data:`LOSSY_ENCODERS` FFmpeg has."""
    for name in LOSSLESS_ENCODERS if lossless else LOSSY_ENCODERS:
        if has_encoder(name):
            return name
    raise FomcError("PyAV's FFmpeg has none of the video encoders fomcodec can use")


#: Pixel formats each encoder may be asked for (``--pix-fmt``); the first is its default.
PIXEL_FORMATS: dict[str, tuple[str, ...]] = {
    "libx264": ("yuv420p", "yuv422p", "yuv444p"),
    "libx264rgb": ("rgb24", "bgr24"),
    "ffv1": ("bgr0", "yuv444p", "yuv420p"),
    "mpeg4": ("yuv420p",),
    "libopenh264": ("yuv420p",),
}


@dataclass(frozen=True)
class VideoOutput:
    """How a command writes video, in ffmpeg's terms: ``codec`` (None: libx264, or the first
    lossless encoder with ``lossless``), ``crf`` (x264's quality scale, 0 = lossless for
    libx264rgb), ``pix_fmt`` (None: the encoder's default, yuv420p for libx264)."""

    codec: str | None = None
    crf: int | None = None
    lossless: bool = False
    pix_fmt: str | None = None

    def __post_init__(self) -> None:
        if self.codec is not None and self.codec not in PIXEL_FORMATS:
            raise ValueError(
                f"unsupported video codec {self.codec!r} (use one of {', '.join(PIXEL_FORMATS)})"
            )
        if self.lossless and self.codec is not None and self.codec not in LOSSLESS_ENCODERS:
            raise ValueError(
                f"{self.codec} is not lossless (use one of {', '.join(LOSSLESS_ENCODERS)})"
            )
        if self.lossless and self.crf:
            raise ValueError("a CRF above 0 is not lossless")
        if self.crf is not None and not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be in 0..51, not {self.crf}")
        if self.pix_fmt is not None:
            allowed = PIXEL_FORMATS[self.codec] if self.codec else PIXEL_FORMATS["libx264"]
            if self.lossless and self.codec is None:
                allowed = PIXEL_FORMATS["libx264rgb"] + PIXEL_FORMATS["ffv1"]
            if self.pix_fmt not in allowed:
                raise ValueError(
                    f"pixel format {self.pix_fmt!r} is not one the encoder takes "
                    f"({', '.join(allowed)})"
                )

    def writer(
        self,
        path: str | os.PathLike,
        fps: Fraction | int | float,
        size: tuple[int, int] | None = None,
        overwrite: bool = False,
    ) -> VideoWriter:
        """A :class:`VideoWriter` with these settings."""
        return VideoWriter(
            path,
            fps,
            size,
            overwrite,
            codec=self.codec,
            crf=self.crf,
            lossless=self.lossless,
            pix_fmt=self.pix_fmt,
        )


def _encoder_settings(
    codec: str,
    width: int,
    height: int,
    fps: Fraction,
    crf: int | None,
    preset: str,
    pix_fmt: str | None = None,
) -> tuple[str, dict[str, str], int | None]:
    """Pixel format, encoder options and bit rate for one of the supported encoders."""
    if pix_fmt is not None and pix_fmt not in PIXEL_FORMATS.get(codec, ()):
        raise ValueError(f"{codec} does not take pixel format {pix_fmt!r}")
    chosen, options, bit_rate = _default_encoder_settings(codec, width, height, fps, crf, preset)
    return pix_fmt or chosen, options, bit_rate


def _default_encoder_settings(
    codec: str, width: int, height: int, fps: Fraction, crf: int | None, preset: str
) -> tuple[str, dict[str, str], int | None]:
    odd = width % 2 or height % 2
    if codec == "libx264":
        options = {"crf": str(18 if crf is None else crf), "preset": preset}
        return ("yuv444p" if odd else "yuv420p"), options, None
    if codec == "libx264rgb":
        return "rgb24", {"crf": str(0 if crf is None else crf), "preset": preset}, None
    if codec == "ffv1":
        return "bgr0", {}, None
    if odd:
        raise ValueError(f"{codec} needs an even frame size, not {width}x{height}")
    if codec == "mpeg4":
        return "yuv420p", {"flags": "+qscale", "global_quality": str(2 * _QP2LAMBDA)}, None
    if codec == "libopenh264":
        return "yuv420p", {}, int(width * height * float(fps) * 0.5)
    raise ValueError(f"unsupported video codec {codec!r}")


class VideoWriter:
    """Write RGB frames to a video file (MP4 by default), atomically.

    Use as a context manager; the file appears only when the block ends without an
    exception, and an existing file is replaced only with ``overwrite=True``.
    ``size`` is (width, height); None takes it from the first frame. ``codec`` None picks
    with :func:`pick_encoder`; ``crf`` applies to the x264 encoders; ``pix_fmt`` None is the
    encoder's default (:data:`PIXEL_FORMATS`).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: Fraction | int | float,
        size: tuple[int, int] | None = None,
        overwrite: bool = False,
        codec: str | None = None,
        crf: int | None = None,
        preset: str = "medium",
        lossless: bool = False,
        pix_fmt: str | None = None,
    ) -> None:
        self.path = check_output_path(path, overwrite)
        self.fps = Fraction(fps).limit_denominator(1_000_000)
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, not {fps}")
        if size is not None and (size[0] < 1 or size[1] < 1):
            raise ValueError(f"frame size must be positive, not {size[0]}x{size[1]}")
        self.format = _CONTAINER_FORMATS.get(self.path.suffix.lower())
        if self.format is None:
            known = ", ".join(_CONTAINER_FORMATS)
            raise FomcError(f"{self.path}: unsupported video file type (use {known})")
        if codec is not None:
            if codec not in LOSSY_ENCODERS + LOSSLESS_ENCODERS:
                raise ValueError(f"unsupported video codec {codec!r}")
            if lossless and codec not in LOSSLESS_ENCODERS:
                raise ValueError(f"{codec} is not lossless (use one of {LOSSLESS_ENCODERS})")
            if not has_encoder(codec):
                raise FomcError(f"PyAV's FFmpeg has no {codec} encoder")
        self.size = size
        self.overwrite = overwrite
        self.codec = codec or pick_encoder(lossless)
        self.crf = crf
        self.preset = preset
        self.pix_fmt = pix_fmt
        if pix_fmt is not None and pix_fmt not in PIXEL_FORMATS.get(self.codec, ()):
            raise ValueError(f"{self.codec} does not take pixel format {pix_fmt!r}")
        self.frames_written = 0
        self.samples_written = 0
        self._stack: contextlib.ExitStack | None = None
        self._container: Any = None
        self._stream: Any = None
        self._audio: Any = None

    def __enter__(self) -> VideoWriter:
        stack = contextlib.ExitStack()
        tmp = stack.enter_context(atomic_output(self.path, self.overwrite))
        try:
            options = {"movflags": "+faststart"} if self.format in ("mp4", "mov") else {}
            self._container = av.open(str(tmp), mode="w", format=self.format, options=options)
            if self.size is not None:
                self._add_stream(*self.size)
        except BaseException as err:
            self._close_container()
            stack.__exit__(type(err), err, err.__traceback__)
            if isinstance(err, av.FFmpegError):
                raise FomcError(f"{self.path}: cannot write video ({_describe(err)})") from None
            raise
        self._stack = stack
        return self

    def _add_stream(self, width: int, height: int) -> None:
        pix_fmt, options, bit_rate = _encoder_settings(
            self.codec, width, height, self.fps, self.crf, self.preset, self.pix_fmt
        )
        stream = self._container.add_stream(self.codec, rate=self.fps, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if bit_rate:
            stream.bit_rate = bit_rate
        if pix_fmt.startswith("yuv"):
            stream.codec_context.colorspace = av.video.reformatter.Colorspace.ITU601
            stream.codec_context.color_range = av.video.reformatter.ColorRange.MPEG
        self.size = (width, height)
        self._stream = stream

    def add_audio(self, sample_rate: int, channels: int = 1, bit_rate: int = 64_000) -> None:
        """Give the file a sound track (AAC, which every player of these containers plays),
        fed with :meth:`write_audio`; call it inside the with block, before writing frames."""
        if self._container is None:
            raise RuntimeError("VideoWriter.add_audio() outside its with block")
        if self.frames_written or self._audio is not None:
            raise RuntimeError("add the audio stream once, before any frame is written")
        stream = self._container.add_stream("aac", rate=sample_rate)
        stream.layout = "mono" if channels == 1 else "stereo"
        stream.bit_rate = bit_rate
        self._audio = stream

    def write_audio(self, pcm: np.ndarray) -> None:
        """Encode (channels, n) int16 samples of the sound track (see :meth:`add_audio`)."""
        if self._audio is None:
            raise RuntimeError("VideoWriter.write_audio() without add_audio()")
        if pcm.shape[-1] == 0:
            return
        layout = "mono" if pcm.shape[0] == 1 else "stereo"
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(pcm.reshape(1, -1) if layout == "mono" else pcm.T.reshape(1, -1)),
            format="s16",
            layout=layout,
        )
        frame.sample_rate = self._audio.rate
        frame.pts = self.samples_written
        self.samples_written += pcm.shape[-1]
        try:
            self._container.mux(self._audio.encode(frame))
        except av.FFmpegError as err:
            raise FomcError(f"{self.path}: cannot write audio ({_describe(err)})") from None

    def write(self, frame_or_batch: np.ndarray) -> None:
        """Encode an (H, W, 3) frame or a (B, H, W, 3) batch of uint8 RGB frames."""
        if self._container is None:
            raise RuntimeError("VideoWriter.write() outside its with block")
        array = np.asarray(frame_or_batch)
        if array.dtype != np.uint8 or array.ndim not in (3, 4) or array.shape[-1] != 3:
            raise ValueError(
                f"expected (H, W, 3) or (B, H, W, 3) uint8 RGB, got {array.shape} {array.dtype}"
            )
        for frame in array if array.ndim == 4 else (array,):
            self._write_one(frame)

    def _write_one(self, frame: np.ndarray) -> None:
        height, width = frame.shape[:2]
        if self._stream is None:
            self._add_stream(width, height)
        if (width, height) != self.size:
            raise ValueError(f"frame is {width}x{height}, the video {self.size[0]}x{self.size[1]}")
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        video_frame.pts = self.frames_written
        video_frame.time_base = 1 / self.fps
        self._encode(video_frame)
        self.frames_written += 1

    def _encode(self, frame: av.VideoFrame | None) -> None:
        try:
            self._container.mux(self._stream.encode(frame))
        except av.FFmpegError as err:
            raise FomcError(f"{self.path}: cannot write video ({_describe(err)})") from None

    def _close_container(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            with contextlib.suppress(av.FFmpegError, OSError):
                container.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is None:
            return
        if exc_type is not None:
            self._close_container()
            stack.__exit__(exc_type, exc, tb)
            return
        try:
            if self.frames_written == 0:
                raise FomcError(f"{self.path}: no frames to write")
            self._encode(None)
            if self._audio is not None:
                try:
                    self._container.mux(self._audio.encode(None))
                except av.FFmpegError as err:
                    raise FomcError(f"{self.path}: cannot write audio ({_describe(err)})") from None
            container, self._container = self._container, None
            try:
                container.close()
            except av.FFmpegError as err:
                raise FomcError(f"{self.path}: cannot write video ({_describe(err)})") from None
        except BaseException as err:
            self._close_container()
            stack.__exit__(type(err), err, err.__traceback__)
            raise
        stack.close()
