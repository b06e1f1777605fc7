"""Classical baselines for ``fomc compare``: AV1 (SVT-AV1) and H.264 (x264) through PyAV.

::

    (N, 256, 256, 3) RGB --every k-th frame, area-averaged to S x S--> encoder (CRF, 1 keyframe)
        --> packets --MP4 in memory--> container bytes      (file_bytes)
                  \\--------------------> sum of packet sizes (payload_bytes)
    MP4 --decoder--> S x S frames --Lanczos to 256, dropped frames blended--> (N, 256, 256, 3)

Every clip gets exactly one keyframe, as a ``.fomc`` stream has one source image: the GOP is
the clip's length and scene-cut keyframes are off (x264 ``scenecut=0``, SVT-AV1 ``scd=0``).
Below about 20 kbit/s these codecs only get there by coding fewer pixels, so a
:class:`BaselineConfig` also shrinks the frame (``size``) and the frame rate
(``fps_divisor``); the decoded frames are scaled back to 256x256 and the frames dropped
between two coded ones are blended from them (as fomc's base layer does; better than showing
each frame ``fps_divisor`` times), so the result has the original frame count and rate and is
measured against the same frames as fomc.

How the bytes are counted (the same for everyone: a whole ``.fomc`` file is the fomc number):

- ``file_bytes``: the whole MP4 file (``ftyp``, ``moov`` with its sample tables, ``mdat``).
- ``payload_bytes``: what a decoder needs without a container: the sum of the packet sizes,
  plus, for H.264, the out-of-band SPS/PPS (the stream's extradata; AV1 carries its sequence
  header in the first packet).
- x264 writes a ~700-byte SEI message with its version and option string into the first
  frame. No decoder uses it and any deployment at these rates would drop it, so it is
  removed (FFmpeg's ``filter_units=remove_types=6`` bitstream filter) before counting.

Encoders: PyAV 18.1's wheel (FFmpeg 8) ships ``libsvtav1`` (SVT-AV1 4.1) and ``libx264``
and decodes AV1 with ``libdav1d``; :func:`available_codecs` says what this build has.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np

from fomcodec.codec.base_video import downscale, fill_dropped, upscale
from fomcodec.errors import FomcError
from fomcodec.runtime import ordinary_scheduling

#: Codec name -> (PyAV encoder, default preset, CRF range).
ENCODERS: dict[str, tuple[str, str, tuple[int, int]]] = {
    "av1": ("libsvtav1", "4", (1, 63)),
    "h264": ("libx264", "veryslow", (0, 51)),
}
CONTAINER_FORMAT = "mp4"
FRAME_SIZE = 256
MIN_SIZE = 16


@dataclass(frozen=True)
class BaselineConfig:
    """One operating point of a classical codec.

    ``size`` is the coded width and height (even, 16..256); ``fps_divisor`` k codes every
    k-th frame at a k times lower frame rate; ``preset`` None takes :data:`ENCODERS`' default.
    """

    codec: str
    crf: int
    size: int = FRAME_SIZE
    fps_divisor: int = 1
    preset: str | None = None

    def __post_init__(self) -> None:
        if self.codec not in ENCODERS:
            raise ValueError(f"unknown baseline codec {self.codec!r} (known: {list(ENCODERS)})")
        low, high = ENCODERS[self.codec][2]
        if not low <= self.crf <= high:
            raise ValueError(f"{self.codec} CRF must be in {low}..{high}, not {self.crf}")
        if self.size % 2 or not MIN_SIZE <= self.size <= FRAME_SIZE:
            raise ValueError(
                f"coded size must be even and in {MIN_SIZE}..{FRAME_SIZE}, not {self.size}"
            )
        if self.fps_divisor < 1:
            raise ValueError(f"fps_divisor must be positive, not {self.fps_divisor}")

    @property
    def encoder(self) -> str:
        return ENCODERS[self.codec][0]

    @property
    def effective_preset(self) -> str:
        return self.preset if self.preset is not None else ENCODERS[self.codec][1]

    @property
    def label(self) -> str:
        """Short name, e.g. ``crf45 128px /2`` (frame rate divided by 2)."""
        rate = f" /{self.fps_divisor}" if self.fps_divisor > 1 else ""
        return f"crf{self.crf} {self.size}px{rate}"


@dataclass
class BaselineRun:
    """What one encode + decode produced; ``frames`` is (N, 256, 256, 3) uint8."""

    config: BaselineConfig
    frames: np.ndarray
    file_bytes: int
    payload_bytes: int
    keyframes: int
    coded_frames: int
    encode_seconds: float
    decode_seconds: float
    data: bytes


def available_codecs() -> dict[str, bool]:
    """Which baseline codecs PyAV's FFmpeg can encode here."""
    return {name: encoder in av.codecs_available for name, (encoder, _, _) in ENCODERS.items()}


def _options(config: BaselineConfig, gop: int, threads: int | None) -> dict[str, str]:
    preset = config.effective_preset
    if config.codec == "h264":
        params = f"keyint={gop}:min-keyint={gop}:scenecut=0"
        options = {"crf": str(config.crf), "preset": preset, "x264-params": params}
        if threads:
            options["threads"] = str(threads)
        return options
    params = f"keyint={gop}:scd=0"
    if threads:
        params += f":lp={threads}"
    return {"crf": str(config.crf), "preset": preset, "svtav1-params": params}


def _encode(
    frames: np.ndarray, fps: Fraction, config: BaselineConfig, threads: int | None
) -> tuple[bytes, int, int]:
    """Encode already scaled frames to MP4 bytes; returns (mp4, payload bytes, keyframes)."""
    gop = len(frames)
    buffer = io.BytesIO()
    payload = keyframes = 0
    bsf: Any = None
    with ordinary_scheduling(), av.open(buffer, mode="w", format=CONTAINER_FORMAT) as container:
        stream = container.add_stream(
            config.encoder, rate=fps, options=_options(config, gop, threads)
        )
        stream.width = stream.height = config.size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = gop
        stream.codec_context.colorspace = av.video.reformatter.Colorspace.ITU601
        stream.codec_context.color_range = av.video.reformatter.ColorRange.MPEG

        def write(packet: Any) -> None:
            nonlocal payload, keyframes
            payload += packet.size
            keyframes += bool(packet.is_keyframe)
            container.mux(packet)

        def mux(packets: Any) -> None:
            nonlocal bsf
            for packet in packets:
                if config.codec != "h264":
                    write(packet)
                    continue
                if bsf is None:  # made once the encoder is open, from its parameters
                    bsf = av.BitStreamFilterContext("filter_units=remove_types=6", stream)
                for out in bsf.filter(packet):
                    write(out)

        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = index
            mux(stream.encode(frame))
        mux(stream.encode(None))
        if bsf is not None:
            for out in bsf.filter(None):
                write(out)
        if config.codec == "h264":
            payload += len(stream.codec_context.extradata or b"")
    return buffer.getvalue(), payload, keyframes


def _decode(data: bytes, expected: int) -> list[np.ndarray]:
    frames: list[np.ndarray] = []
    with av.open(io.BytesIO(data), mode="r") as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
    if len(frames) != expected:
        raise FomcError(f"baseline decoder returned {len(frames)} frames, expected {expected}")
    return frames


def encode_decode(
    frames: np.ndarray,
    fps: Fraction | int | float,
    config: BaselineConfig,
    threads: int | None = None,
) -> BaselineRun:
    """Encode (N, 256, 256, 3) uint8 RGB frames at ``config``, decode them again, and return
    the decoded frames at 256x256 and the original frame count, with the byte counts.

    Shape:
        - frames: (N, 256, 256, 3) uint8
        - result ``frames``: (N, 256, 256, 3) uint8
    """
    frames = np.asarray(frames)
    if (
        frames.ndim != 4
        or frames.shape[1:] != (FRAME_SIZE, FRAME_SIZE, 3)
        or frames.dtype != np.uint8
        or len(frames) == 0
    ):
        raise ValueError(
            f"expected (N, {FRAME_SIZE}, {FRAME_SIZE}, 3) uint8 frames, got "
            f"{frames.shape} {frames.dtype}"
        )
    if not available_codecs()[config.codec]:
        raise FomcError(f"PyAV's FFmpeg has no {config.encoder} encoder")
    fps = Fraction(fps).limit_denominator(1_000_000)
    if fps <= 0:
        raise ValueError(f"fps must be positive, not {fps}")
    started = time.perf_counter()
    kept = frames[:: config.fps_divisor]
    scaled = np.stack([downscale(frame, config.size, config.size) for frame in kept])
    try:
        data, payload, keyframes = _encode(scaled, fps / config.fps_divisor, config, threads)
    except av.FFmpegError as exc:
        raise FomcError(f"{config.encoder} failed at {config.label}: {exc}") from None
    encoded = time.perf_counter()
    decoded = _decode(data, len(kept))
    restored = (upscale(frame, FRAME_SIZE, FRAME_SIZE) for frame in decoded)
    filled = fill_dropped(restored, range(0, len(frames), config.fps_divisor), len(frames))
    output = np.stack([np.clip(frame + 0.5, 0, 255).astype(np.uint8) for frame in filled])
    finished = time.perf_counter()
    return BaselineRun(
        config=config,
        frames=output,
        file_bytes=len(data),
        payload_bytes=payload,
        keyframes=keyframes,
        coded_frames=len(kept),
        encode_seconds=encoded - started,
        decode_seconds=finished - encoded,
        data=data,
    )
