"""The ``.fomc`` container: one header, source image(s) and the quantised motion.

::

    "FOMC" | version u8 | HEAD | SIMG ... SIMG | [KEYF] | MOTN, MOTA or BASE | [opus] | "END "
                          each chunk: tag[4] | length u32le | payload | crc32 u32le

    motion int16 (T, K, 2) [+ (T, K, 2, 2)] -> (T, C) int16, then either
      "lzma2" (version 1, MOTN): delta over t (wrap) -> zigzag u16 -> planar (C, T)
          -> high-byte plane + low-byte plane -> raw LZMA2
      "range" (version 2, MOTA): closed-loop prediction, adaptive Laplace model, range coder
          (:mod:`fomcodec.codec.motion_coding`)
    or, instead of motion (version 4, BASE): the frames at low resolution as AV1 packets
      (:mod:`fomcodec.codec.base_layer`); version 5: with a frame rate chosen per segment

The byte-exact format is specified in ``docs/bitstream.md``. Every reading error is a
:class:`~fomcodec.errors.BitstreamError` (or its subclass
:class:`~fomcodec.errors.UnsupportedVersionError`); nothing else escapes :func:`unpack`.
"""

from __future__ import annotations

import lzma
import math
import numbers
import os
import struct
import zlib
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from fomcodec.codec.motion_coding import decode_residuals, encode_residuals, rest_position
from fomcodec.codec.quantization import QuantizationParams, QuantizedMotion
from fomcodec.errors import BitstreamError, InputError, UnsupportedVersionError
from fomcodec.fileio import write_bytes_atomic

MAGIC = b"FOMC"
#: Version 1: LZMA2 motion (MOTN) only; version 2 adds range-coded motion (MOTA); version 3
#: adds keyframes (more than one SIMG, placed by a KEYF chunk); version 4 adds the AV1 base
#: layer (BASE) in place of motion; version 5, base layers whose frame rate changes per
#: segment. A stream is written with the lowest version that holds it, so ``lzma2`` streams of
#: one source image stay version 1.
FORMAT_VERSION = 5
SUPPORTED_VERSIONS = (1, 2, 3, 4, 5)
MOTION_CODINGS = ("range", "lzma2")
DEFAULT_MOTION_CODING = "range"
#: Quantisation each motion coding uses unless told otherwise: ``lzma2`` keeps the seed's
#: layout (keypoints x10,000, Jacobians x1,000); ``range`` steps measured in docs/bitstream.md.
DEFAULT_QUANTIZATION = {"lzma2": QuantizationParams(), "range": QuantizationParams(250, 10)}


def quantization_for(
    motion_coding: str, value_scale: int | None = None, jacobian_scale: int | None = None
) -> QuantizationParams:
    """The scales a stream with ``motion_coding`` uses: those given, else the coding's default."""
    default = DEFAULT_QUANTIZATION[motion_coding]
    return QuantizationParams(
        value_scale or default.value_scale, jacobian_scale or default.jacobian_scale
    )


# What the encoder sends by default: motion for every other frame. Measured on the held-out
# clips (docs/interpolation.md): the same quality as every frame, 41% less motion.
DEFAULT_MOTION_STRIDE = 2

#: Stable ids of source-image codecs in ``SIMG`` chunks; never renumber, only append.
IMAGE_CODEC_IDS: dict[str, int] = {"png": 0, "jpeg": 1, "webp": 2, "avif": 3, "av1": 4}
_IMAGE_CODEC_NAMES = {v: k for k, v in IMAGE_CODEC_IDS.items()}

#: Largest decompressed motion payload a reader accepts (decompression-bomb guard).
MAX_MOTION_BYTES = 512 * 1024 * 1024
MIN_FRAME_SIDE, MAX_FRAME_SIDE = 16, 4096
U32_MAX = 2**32 - 1
FLOAT32_MAX = float(np.finfo(np.float32).max)

TAG_HEAD, TAG_SIMG, TAG_MOTN, TAG_MOTA, TAG_END = b"HEAD", b"SIMG", b"MOTN", b"MOTA", b"END "
TAG_KEYF, TAG_BASE = b"KEYF", b"BASE"
TAG_AUDIO = b"opus"  # ancillary (lower case): readers that do not know it skip it
_CHUNK_FRAME = 12  # tag + length + crc
_TAG_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ")

# width, height, fps num, fps den, frame_count, motion_stride, num_kp, flags,
# value_scale, jacobian_scale, adapt_scale, clipped, weights_hash, model-name length
_HEAD = struct.Struct("<HHIIIBBBIIfI8sB")
FLAG_RELATIVE_MOTION = 0x01
FLAG_HAS_JACOBIANS = 0x02
_KNOWN_FLAGS = FLAG_RELATIVE_MOTION | FLAG_HAS_JACOBIANS

_LZMA_PRESET = 9 | lzma.PRESET_EXTREME
_DECODE_ERRORS = (
    struct.error,
    lzma.LZMAError,
    ValueError,
    IndexError,
    KeyError,
    UnicodeDecodeError,
    MemoryError,
    ArithmeticError,
    EOFError,
)


AUDIO_CODEC_IDS: dict[str, int] = {"opus": 1}
_AUDIO_CODEC_NAMES = {v: k for k, v in AUDIO_CODEC_IDS.items()}
# codec id, channels, sample rate, bit rate, samples, extradata length
_AUDIO_HEAD = struct.Struct("<BBIIQH")
_PACKET_LENGTH = struct.Struct("<H")


@dataclass
class AudioTrack:
    """The stream's sound (ancillary ``opus`` chunk): coded packets in order, the codec's
    extradata (Opus: its ``OpusHead``), and ``samples``, the decoded length that lines up
    with the video (the packets may decode to a little more, which is cut)."""

    codec: str
    sample_rate: int
    channels: int
    bit_rate: int
    samples: int
    extradata: bytes
    packets: list[bytes]

    def validate(self) -> None:
        """Raise ValueError unless every field is storable."""
        if self.codec not in AUDIO_CODEC_IDS:
            raise ValueError(f"unknown audio codec {self.codec!r}")
        _check_int("audio channels", self.channels, 1, 2)
        _check_int("audio sample rate", self.sample_rate, 8000, 192000)
        _check_int("audio bit rate", self.bit_rate, 0, U32_MAX)
        _check_int("audio samples", self.samples, 0, 2**63 - 1)
        if len(self.extradata) > 0xFFFF or any(not p or len(p) > 0xFFFF for p in self.packets):
            raise ValueError("audio extradata and packets must be 1..65535 bytes")

    @property
    def duration(self) -> float:
        return self.samples / self.sample_rate


def _pack_audio(track: AudioTrack) -> bytes:
    head = _AUDIO_HEAD.pack(
        AUDIO_CODEC_IDS[track.codec],
        track.channels,
        track.sample_rate,
        track.bit_rate,
        track.samples,
        len(track.extradata),
    )
    body = b"".join(_PACKET_LENGTH.pack(len(p)) + p for p in track.packets)
    return head + track.extradata + body


BASE_CODEC_IDS: dict[str, int] = {"av1": 1}
_BASE_CODEC_NAMES = {v: k for k, v in BASE_CODEC_IDS.items()}
#: How the decoder fuses base frames with the source images; stable ids, only append.
FUSER_IDS: dict[str, int] = {"detail": 0, "learned": 1}
_FUSER_NAMES = {v: k for k, v in FUSER_IDS.items()}
# codec id, fuser id, width, height, fps divisor, frame count, packet count
_BASE_HEAD = struct.Struct("<BBHHBII")
_BASE_PACKET_LENGTH = struct.Struct("<I")
# version 5: frames per segment, segment count; then one divisor byte per segment
_BASE_SCHEDULE_HEAD = struct.Struct("<HI")


@dataclass
class BaseLayer:
    """The frames at low resolution (``BASE`` chunk, version 4): every ``fps_divisor``-th
    frame, ``width`` x ``height``, as ``frame_count`` frames of coded packets in decoding
    order, and the way the decoder fuses them with the source images (``fuser``).

    With ``segment_divisors`` (version 5) the frame rate changes per segment of
    ``segment_frames`` frames: segment i codes every ``segment_divisors[i]``-th of its frames
    (each divisor divides ``segment_frames``), and ``fps_divisor`` is the largest."""

    codec: str
    fuser: str
    width: int
    height: int
    fps_divisor: int
    frame_count: int
    packets: list[bytes]
    segment_frames: int = 0
    segment_divisors: tuple[int, ...] = ()

    def coded_frames(self, frame_count: int) -> range | list[int]:
        """Indices of the coded frames among a stream's ``frame_count`` frames, ascending."""
        if not self.segment_divisors:
            return range(0, frame_count, self.fps_divisor)
        size = self.segment_frames
        return [
            index
            for i, divisor in enumerate(self.segment_divisors)
            for index in range(i * size, min((i + 1) * size, frame_count), divisor)
        ]

    def coded_frame_count(self, frame_count: int) -> int:
        """``len(self.coded_frames(frame_count))``, without listing them."""
        if not self.segment_divisors:
            return -(-frame_count // self.fps_divisor)
        size = self.segment_frames
        return sum(
            -(-max(0, min(size, frame_count - i * size)) // divisor)
            for i, divisor in enumerate(self.segment_divisors)
        )

    def validate(self) -> None:
        """Raise ValueError unless every field is storable."""
        if self.codec not in BASE_CODEC_IDS:
            raise ValueError(f"unknown base layer codec {self.codec!r}")
        if self.fuser not in FUSER_IDS:
            raise ValueError(f"unknown base layer fuser {self.fuser!r}")
        _check_int("base width", self.width, MIN_FRAME_SIDE, MAX_FRAME_SIDE)
        _check_int("base height", self.height, MIN_FRAME_SIDE, MAX_FRAME_SIDE)
        _check_int("base fps_divisor", self.fps_divisor, 1, 255)
        _check_int("base frame_count", self.frame_count, 1, U32_MAX)
        if not self.packets or any(not p or len(p) > U32_MAX for p in self.packets):
            raise ValueError("a base layer needs packets of 1..2**32-1 bytes")
        if self.segment_divisors or self.segment_frames:
            _check_int("base segment_frames", self.segment_frames, 1, 2**16 - 1)
            if not 1 <= len(self.segment_divisors) <= U32_MAX:
                raise ValueError("an adaptive base layer needs 1..2**32-1 segment divisors")
            for divisor in self.segment_divisors:
                _check_int("base segment divisor", divisor, 1, 255)
                if self.segment_frames % divisor:
                    raise ValueError(
                        f"segment divisor {divisor} does not divide {self.segment_frames} frames"
                    )
            if max(self.segment_divisors) != self.fps_divisor:
                raise ValueError("fps_divisor must be the largest segment divisor")


def _pack_base(layer: BaseLayer) -> bytes:
    head = _BASE_HEAD.pack(
        BASE_CODEC_IDS[layer.codec],
        FUSER_IDS[layer.fuser],
        layer.width,
        layer.height,
        layer.fps_divisor,
        layer.frame_count,
        len(layer.packets),
    )
    if layer.segment_divisors:
        head += _BASE_SCHEDULE_HEAD.pack(layer.segment_frames, len(layer.segment_divisors))
        head += bytes(layer.segment_divisors)
    return head + b"".join(_BASE_PACKET_LENGTH.pack(len(p)) + p for p in layer.packets)


def _unpack_base(payload: bytes, version: int) -> BaseLayer:
    if len(payload) < _BASE_HEAD.size:
        raise BitstreamError(f"BASE chunk of {len(payload)} bytes is shorter than its header")
    codec_id, fuser_id, width, height, divisor, frames, count = _BASE_HEAD.unpack_from(payload)
    codec, fuser = _BASE_CODEC_NAMES.get(codec_id), _FUSER_NAMES.get(fuser_id)
    if codec is None:
        raise BitstreamError(f"unknown base layer codec id {codec_id}")
    if fuser is None:
        raise BitstreamError(f"unknown base layer fuser id {fuser_id}")
    pos, packets = _BASE_HEAD.size, []
    segment_frames, divisors = 0, b""
    if version >= 5:
        if pos + _BASE_SCHEDULE_HEAD.size > len(payload):
            raise BitstreamError("base layer frame-rate schedule cut short")
        segment_frames, segments = _BASE_SCHEDULE_HEAD.unpack_from(payload, pos)
        pos += _BASE_SCHEDULE_HEAD.size
        if pos + segments > len(payload):
            raise BitstreamError("base layer frame-rate schedule cut short")
        divisors, pos = payload[pos : pos + segments], pos + segments
        if not divisors:
            raise BitstreamError("a version 5 base layer without a frame-rate schedule")
    for _ in range(count):
        if pos + _BASE_PACKET_LENGTH.size > len(payload):
            raise BitstreamError("base layer packet length cut short")
        (length,) = _BASE_PACKET_LENGTH.unpack_from(payload, pos)
        pos += _BASE_PACKET_LENGTH.size
        if length == 0 or pos + length > len(payload):
            raise BitstreamError("base layer packet empty or cut short")
        packets.append(payload[pos : pos + length])
        pos += length
    if pos != len(payload):
        raise BitstreamError(f"{len(payload) - pos} bytes after the last base layer packet")
    layer = BaseLayer(
        codec, fuser, width, height, divisor, frames, packets, segment_frames, tuple(divisors)
    )
    try:
        layer.validate()
    except ValueError as exc:
        raise BitstreamError(f"invalid base layer: {exc}") from exc
    return layer


def _unpack_audio(payload: bytes) -> AudioTrack:
    if len(payload) < _AUDIO_HEAD.size:
        raise BitstreamError(f"opus chunk of {len(payload)} bytes is shorter than its header")
    codec_id, channels, rate, bit_rate, samples, extra = _AUDIO_HEAD.unpack_from(payload)
    codec = _AUDIO_CODEC_NAMES.get(codec_id)
    if codec is None:
        raise BitstreamError(f"unknown audio codec id {codec_id}")
    pos = _AUDIO_HEAD.size + extra
    if pos > len(payload):
        raise BitstreamError("audio extradata runs past the end of its chunk")
    extradata, packets = payload[_AUDIO_HEAD.size : pos], []
    while pos < len(payload):
        if pos + 2 > len(payload):
            raise BitstreamError("audio packet length cut short")
        (length,) = _PACKET_LENGTH.unpack_from(payload, pos)
        if length == 0 or pos + 2 + length > len(payload):
            raise BitstreamError("audio packet empty or cut short")
        packets.append(payload[pos + 2 : pos + 2 + length])
        pos += 2 + length
    track = AudioTrack(codec, rate, channels, bit_rate, samples, extradata, packets)
    try:
        track.validate()
    except ValueError as exc:
        raise BitstreamError(f"invalid audio: {exc}") from exc
    return track


@dataclass
class EncodedImage:
    """One coded source image: ``codec`` is a key of :data:`IMAGE_CODEC_IDS`."""

    codec: str
    data: bytes

    def __post_init__(self) -> None:
        if self.codec not in IMAGE_CODEC_IDS:
            raise ValueError(f"unknown image codec {self.codec!r}; known: {list(IMAGE_CODEC_IDS)}")
        if not isinstance(self.data, bytes | bytearray | memoryview):
            raise ValueError(f"image data must be bytes, got {type(self.data).__name__}")
        self.data = bytes(self.data)


@dataclass(frozen=True)
class Keyframe:
    """Where a source image takes over: output frame ``frame`` (a multiple of the motion
    stride) and the motion scale of its segment (``adapt_scale``, 1.0 unless the encoder
    adapted motion to the source's face size)."""

    frame: int
    adapt_scale: float = 1.0


_KEYF_COUNT = struct.Struct("<I")
_KEYF_ENTRY = struct.Struct("<If")


def motion_frame_count(frame_count: int, motion_stride: int) -> int:
    """Frames that carry keypoints: ``ceil(frame_count / motion_stride)``.

    Motion frame ``i`` belongs to output frame ``i * motion_stride``.
    """
    return -(-frame_count // motion_stride)


@dataclass
class StreamHeader:
    """Everything a decoder needs besides the images and the motion (``HEAD`` chunk).

    Only ``adapt_scale`` loses precision on a round trip (it is stored as float32); ``fps``
    comes back as a normalised :class:`~fractions.Fraction`.
    """

    width: int
    height: int
    fps: Fraction
    frame_count: int
    model_name: str
    weights_hash: bytes
    num_kp: int
    relative_motion: bool = True
    has_jacobians: bool = True
    motion_stride: int = 1
    quantization: QuantizationParams = field(default_factory=QuantizationParams)
    adapt_scale: float = 1.0
    clipped: int = 0

    @property
    def motion_frames(self) -> int:
        """Number of motion frames T: ``ceil(frame_count / motion_stride)``."""
        return motion_frame_count(self.frame_count, self.motion_stride)

    @property
    def motion_raw_bytes(self) -> int:
        """Size of the motion arrays in bytes: ``T * K * (2 + 4 if Jacobians) * 2``."""
        return self.motion_frames * self.num_kp * (6 if self.has_jacobians else 2) * 2

    def validate(self) -> None:
        """Raise ValueError unless every field is storable and sane."""
        _check_int("width", self.width, MIN_FRAME_SIDE, MAX_FRAME_SIDE)
        _check_int("height", self.height, MIN_FRAME_SIDE, MAX_FRAME_SIDE)
        if isinstance(self.fps, bool) or not isinstance(self.fps, numbers.Rational):
            raise ValueError(f"fps must be a Fraction or int, got {type(self.fps).__name__}")
        fps = Fraction(self.fps)
        if fps <= 0 or fps.numerator > U32_MAX or fps.denominator > U32_MAX:
            raise ValueError(f"fps must be > 0 with numerator and denominator < 2**32, got {fps}")
        _check_int("frame_count", self.frame_count, 1, U32_MAX)
        _check_int("motion_stride", self.motion_stride, 1, 255)
        if not isinstance(self.model_name, str):
            raise ValueError(f"model_name must be a str, got {type(self.model_name).__name__}")
        name = self.model_name.encode("utf-8")
        if not 1 <= len(name) <= 255 or not self.model_name.isprintable():
            raise ValueError(
                f"model_name must be 1..255 UTF-8 bytes of printable text, got {self.model_name!r}"
            )
        if not isinstance(self.weights_hash, bytes) or len(self.weights_hash) != 8:
            raise ValueError(f"weights_hash must be exactly 8 bytes, got {self.weights_hash!r}")
        _check_int("num_kp", self.num_kp, 1, 255)
        if not isinstance(self.quantization, QuantizationParams):
            raise ValueError("quantization must be a QuantizationParams")
        for name_ in ("relative_motion", "has_jacobians"):
            if not isinstance(getattr(self, name_), bool):
                raise ValueError(f"{name_} must be a bool")
        _check_scale("adapt_scale", self.adapt_scale)
        if self.motion_raw_bytes > MAX_MOTION_BYTES:
            raise ValueError(
                f"motion of {self.motion_raw_bytes} bytes exceeds the limit of {MAX_MOTION_BYTES}"
            )
        _check_int("clipped", self.clipped, 0, self.motion_raw_bytes // 2)


def _to_f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def _check_scale(name: str, scale: object) -> None:
    """A movement scale: a real number, finite and > 0 as a float32."""
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise ValueError(f"{name} must be a float, got {type(scale).__name__}")
    if not (math.isfinite(scale) and 0 < scale <= FLOAT32_MAX) or _to_f32(scale) == 0:
        raise ValueError(f"{name} must be finite and > 0 as a float32, got {scale}")


def _check_int(name: str, value: object, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an int, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in {lo}..{hi}, got {value}")


@dataclass
class Bitstream:
    """A whole ``.fomc`` stream in memory: source images and either keypoint ``motion`` or
    a ``base`` layer (version 4; the header's motion fields are then unused: stride 1)."""

    header: StreamHeader
    source_images: list[EncodedImage]
    motion: QuantizedMotion | None
    motion_coding: str = "lzma2"
    audio: AudioTrack | None = None
    #: Where the second and later source images take over (one per image after the first,
    #: which starts at frame 0 with ``header.adapt_scale``).
    keyframes: list[Keyframe] = field(default_factory=list)
    #: Bytes per part (:func:`section_sizes`) of the stream this one was read from, if any.
    sizes: dict[str, int] | None = field(default=None, compare=False, repr=False)
    base: BaseLayer | None = None

    @property
    def version(self) -> int:
        """The format version this stream is written with."""
        if self.base is not None:
            return 5 if self.base.segment_divisors else 4
        if self.keyframes:
            return 3
        return 1 if self.motion_coding == "lzma2" else 2

    def segments(self) -> list[tuple[int, int, float]]:
        """``(first frame, end frame, adapt_scale)`` of the run of frames each source image
        drives, in order; together they cover ``0..frame_count``."""
        starts = [Keyframe(0, self.header.adapt_scale), *self.keyframes]
        ends = [k.frame for k in starts[1:]] + [self.header.frame_count]
        return [(k.frame, end, k.adapt_scale) for k, end in zip(starts, ends, strict=True)]

    def validate(self) -> None:
        """Raise ValueError unless the header, images and motion agree with each other."""
        if self.motion_coding not in MOTION_CODINGS:
            raise ValueError(
                f"motion_coding must be one of {MOTION_CODINGS}, got {self.motion_coding!r}"
            )
        h = self.header
        if not isinstance(h, StreamHeader):
            raise ValueError("header must be a StreamHeader")
        h.validate()
        if not self.source_images:
            raise ValueError("a stream needs at least one source image")
        for img in self.source_images:
            if not isinstance(img, EncodedImage):
                raise ValueError("source_images must hold EncodedImage objects")
            if not img.data:
                raise ValueError("a source image has no data")
            if len(img.data) + 1 > U32_MAX:
                raise ValueError("a source image is too large for one chunk")
        self._validate_keyframes()
        if self.audio is not None:
            self.audio.validate()
        if self.base is not None:
            self._validate_base()
            return
        m = self.motion
        if not isinstance(m, QuantizedMotion):
            raise ValueError("motion must be a QuantizedMotion")
        m.validate()
        if m.num_kp != h.num_kp:
            raise ValueError(f"motion has {m.num_kp} keypoints, header.num_kp is {h.num_kp}")
        if (m.jacobians is not None) != h.has_jacobians:
            raise ValueError(
                f"header.has_jacobians is {h.has_jacobians} but motion.jacobians is "
                f"{'present' if m.jacobians is not None else 'None'}"
            )
        if m.num_frames != h.motion_frames:
            raise ValueError(
                f"motion has {m.num_frames} frames, the header needs ceil(frame_count "
                f"{h.frame_count} / motion_stride {h.motion_stride}) = {h.motion_frames}"
            )
        if m.clipped != h.clipped:
            raise ValueError(f"motion.clipped {m.clipped} != header.clipped {h.clipped}")

    def _validate_base(self) -> None:
        h, layer = self.header, self.base
        if not isinstance(layer, BaseLayer):
            raise ValueError("base must be a BaseLayer")
        layer.validate()
        if self.motion is not None:
            raise ValueError("a stream carries motion or a base layer, not both")
        if h.motion_stride != 1 or h.clipped:
            raise ValueError("a base layer stream has motion_stride 1 and nothing clipped")
        if layer.width > h.width or layer.height > h.height:
            raise ValueError(
                f"base layer {layer.width}x{layer.height} is larger than the frames "
                f"{h.width}x{h.height}"
            )
        if layer.segment_divisors:
            segments = -(-h.frame_count // layer.segment_frames)
            if len(layer.segment_divisors) != segments:
                raise ValueError(
                    f"base layer has {len(layer.segment_divisors)} segment divisors, "
                    f"{segments} segments of {layer.segment_frames} frames need one each"
                )
        needed = layer.coded_frame_count(h.frame_count)
        if layer.frame_count != needed:
            raise ValueError(
                f"base layer has {layer.frame_count} frames, its frame rate codes {needed} of "
                f"frame_count {h.frame_count}"
            )

    def _validate_keyframes(self) -> None:
        h = self.header
        if len(self.keyframes) != len(self.source_images) - 1:
            raise ValueError(
                f"{len(self.source_images)} source images need {len(self.source_images) - 1} "
                f"keyframes after the first, got {len(self.keyframes)}"
            )
        previous = 0
        for key in self.keyframes:
            if not isinstance(key, Keyframe):
                raise ValueError("keyframes must hold Keyframe objects")
            _check_int("keyframe frame", key.frame, previous + 1, h.frame_count - 1)
            if key.frame % h.motion_stride:
                raise ValueError(
                    f"keyframe at frame {key.frame} is not on a motion frame (stride "
                    f"{h.motion_stride})"
                )
            _check_scale("keyframe adapt_scale", key.adapt_scale)
            previous = key.frame


def _pack_keyframes(keyframes: list[Keyframe]) -> bytes:
    entries = (_KEYF_ENTRY.pack(k.frame, k.adapt_scale) for k in keyframes)
    return _KEYF_COUNT.pack(len(keyframes)) + b"".join(entries)


def _unpack_keyframes(payload: bytes) -> list[Keyframe]:
    if len(payload) < _KEYF_COUNT.size:
        raise BitstreamError("KEYF chunk is shorter than its count")
    (count,) = _KEYF_COUNT.unpack_from(payload)
    if len(payload) != _KEYF_COUNT.size + count * _KEYF_ENTRY.size:
        raise BitstreamError(f"KEYF chunk of {len(payload)} bytes does not hold {count} entries")
    return [
        Keyframe(*_KEYF_ENTRY.unpack_from(payload, _KEYF_COUNT.size + i * _KEYF_ENTRY.size))
        for i in range(count)
    ]


# ---------------------------------------------------------------- header


def _pack_header(h: StreamHeader) -> bytes:
    fps = Fraction(h.fps)
    flags = (FLAG_RELATIVE_MOTION if h.relative_motion else 0) | (
        FLAG_HAS_JACOBIANS if h.has_jacobians else 0
    )
    name = h.model_name.encode("utf-8")
    fixed = _HEAD.pack(
        h.width,
        h.height,
        fps.numerator,
        fps.denominator,
        h.frame_count,
        h.motion_stride,
        h.num_kp,
        flags,
        h.quantization.value_scale,
        h.quantization.jacobian_scale,
        h.adapt_scale,
        h.clipped,
        h.weights_hash,
        len(name),
    )
    return fixed + name


def _unpack_header(payload: bytes) -> StreamHeader:
    if len(payload) < _HEAD.size:
        raise BitstreamError(f"HEAD payload is {len(payload)} bytes, needs at least {_HEAD.size}")
    (w, h, num, den, frames, stride, num_kp, flags, vscale, jscale, adapt, clipped, whash,
     name_len) = _HEAD.unpack_from(payload)  # fmt: skip
    if len(payload) != _HEAD.size + name_len:
        raise BitstreamError(
            f"HEAD payload is {len(payload)} bytes, expected {_HEAD.size + name_len}"
        )
    if flags & ~_KNOWN_FLAGS:
        raise BitstreamError(f"unknown header flag bits 0x{flags & ~_KNOWN_FLAGS:02x}")
    if num == 0 or den == 0:
        raise BitstreamError(f"invalid frame rate {num}/{den}")
    if vscale == 0 or jscale == 0:
        raise BitstreamError("quantisation scale of zero")
    try:
        name = payload[_HEAD.size :].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BitstreamError("model name is not valid UTF-8") from exc
    header = StreamHeader(
        width=w,
        height=h,
        fps=Fraction(num, den),
        frame_count=frames,
        model_name=name,
        weights_hash=whash,
        num_kp=num_kp,
        relative_motion=bool(flags & FLAG_RELATIVE_MOTION),
        has_jacobians=bool(flags & FLAG_HAS_JACOBIANS),
        motion_stride=stride,
        quantization=QuantizationParams(vscale, jscale),
        adapt_scale=adapt,
        clipped=clipped,
    )
    try:
        header.validate()
    except ValueError as exc:
        raise BitstreamError(f"invalid header: {exc}") from exc
    return header


# ---------------------------------------------------------------- motion


def _lzma_filters(raw_size: int, preset: bool) -> list[dict]:
    # The dictionary never needs to exceed the data: max(4 KiB, raw size) gives the same
    # stream as the preset's 64 MiB dictionary at a fraction of the memory and setup time.
    filt: dict = {"id": lzma.FILTER_LZMA2, "dict_size": max(4096, raw_size)}
    if preset:
        filt["preset"] = _LZMA_PRESET
    return [filt]


def _motion_channels(motion: QuantizedMotion) -> np.ndarray:
    """(T, C) int16: per frame, K*2 coordinates then K*4 Jacobian entries."""
    t = motion.num_frames
    parts = [motion.values.reshape(t, -1)]
    if motion.jacobians is not None:
        parts.append(motion.jacobians.reshape(t, -1))
    return np.concatenate(parts, axis=1).astype(np.int16)


def encode_motion(motion: QuantizedMotion) -> bytes:
    """Lossless transform + raw LZMA2 of the motion arrays (the ``MOTN`` payload)."""
    x = _motion_channels(motion).astype(np.int32)
    d = x.copy()
    d[1:] = x[1:] - x[:-1]
    d = ((d & 0xFFFF).astype(np.uint16)).view(np.int16).astype(np.int32)
    z = (((d << 1) ^ (d >> 15)) & 0xFFFF).astype(np.uint16)
    planar = np.ascontiguousarray(z.T).ravel()
    raw = (planar >> 8).astype(np.uint8).tobytes() + (planar & 0xFF).astype(np.uint8).tobytes()
    return lzma.compress(raw, format=lzma.FORMAT_RAW, filters=_lzma_filters(len(raw), True))


def decode_motion(payload: bytes, header: StreamHeader) -> QuantizedMotion:
    """Inverse of :func:`encode_motion` for the shapes the header declares."""
    expected = header.motion_raw_bytes
    if expected > MAX_MOTION_BYTES:
        raise BitstreamError(f"declared motion size {expected} bytes is beyond the limit")
    if not payload:
        raise BitstreamError("empty MOTN payload")
    dec = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_lzma_filters(expected, False))
    try:
        raw = dec.decompress(payload, max_length=expected + 1)
    except lzma.LZMAError as exc:
        raise BitstreamError(f"motion data is corrupt: {exc}") from exc
    if len(raw) != expected or not dec.eof or dec.unused_data:
        raise BitstreamError(
            f"motion decompresses to {len(raw)}{'+' if not dec.eof else ''} bytes with "
            f"{len(dec.unused_data)} trailing, expected exactly {expected}"
        )
    t, k = header.motion_frames, header.num_kp
    n = expected // 2
    buf = np.frombuffer(raw, dtype=np.uint8)
    z = (buf[:n].astype(np.int64) << 8) | buf[n:]
    d = (z >> 1) ^ -(z & 1)
    x = np.cumsum(d.reshape(-1, t).T, axis=0)
    x = (x & 0xFFFF).astype(np.uint16).view(np.int16)
    values = np.ascontiguousarray(x[:, : 2 * k]).reshape(t, k, 2)
    jac = None
    if header.has_jacobians:
        jac = np.ascontiguousarray(x[:, 2 * k :]).reshape(t, k, 2, 2)
    return QuantizedMotion(values=values, jacobians=jac, clipped=header.clipped)


def _rest_position(header: StreamHeader) -> np.ndarray:
    channels = header.num_kp * (6 if header.has_jacobians else 2)
    return rest_position(channels, header.num_kp, header.quantization.jacobian_scale)


def encode_motion_range(motion: QuantizedMotion, header: StreamHeader) -> bytes:
    """The ``MOTA`` payload: model-based range coding (:mod:`fomcodec.codec.motion_coding`)."""
    return encode_residuals(_motion_channels(motion), header.num_kp, _rest_position(header))


def decode_motion_range(payload: bytes, header: StreamHeader) -> QuantizedMotion:
    """Inverse of :func:`encode_motion_range` for the shapes the header declares."""
    t, k = header.motion_frames, header.num_kp
    x = decode_residuals(payload, t, k, _rest_position(header))
    values = np.ascontiguousarray(x[:, : 2 * k]).reshape(t, k, 2)
    jac = np.ascontiguousarray(x[:, 2 * k :]).reshape(t, k, 2, 2) if header.has_jacobians else None
    return QuantizedMotion(values=values, jacobians=jac, clipped=header.clipped)


# ---------------------------------------------------------------- chunks


def _chunk(tag: bytes, payload: bytes) -> bytes:
    head = tag + struct.pack("<I", len(payload))
    return head + payload + struct.pack("<I", zlib.crc32(payload, zlib.crc32(head)))


def pack(stream: Bitstream) -> bytes:
    """Serialise a stream; raises ValueError if it is inconsistent or not storable."""
    stream.validate()
    parts = [MAGIC, bytes([stream.version]), _chunk(TAG_HEAD, _pack_header(stream.header))]
    for img in stream.source_images:
        parts.append(_chunk(TAG_SIMG, bytes([IMAGE_CODEC_IDS[img.codec]]) + img.data))
    if stream.keyframes:
        parts.append(_chunk(TAG_KEYF, _pack_keyframes(stream.keyframes)))
    if stream.base is not None:
        parts.append(_chunk(TAG_BASE, _pack_base(stream.base)))
    elif stream.motion_coding == "lzma2":
        parts.append(_chunk(TAG_MOTN, encode_motion(stream.motion)))
    else:
        parts.append(_chunk(TAG_MOTA, encode_motion_range(stream.motion, stream.header)))
    if stream.audio is not None:
        parts.append(_chunk(TAG_AUDIO, _pack_audio(stream.audio)))
    parts.append(_chunk(TAG_END, b""))
    return b"".join(parts)


def _check_preamble(data: bytes) -> None:
    if not data:
        raise BitstreamError("empty stream")
    if data[:4] != MAGIC:
        if MAGIC.startswith(data):
            raise BitstreamError("truncated stream: incomplete magic number")
        raise BitstreamError("not a .fomc stream (bad magic)")
    if len(data) < 5:
        raise BitstreamError("truncated stream: no format version byte")
    if data[4] not in SUPPORTED_VERSIONS:
        raise UnsupportedVersionError(
            f"format version {data[4]} is not supported (this build reads versions "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))})"
        )


def _parse(data: bytes) -> tuple[Bitstream, dict[str, int]]:
    _check_preamble(data)
    sizes = {"container": 5, "header": 0, "image": 0, "motion": 0, "base": 0, "audio": 0}
    audio: AudioTrack | None = None
    pos = 5
    header: StreamHeader | None = None
    images: list[EncodedImage] = []
    keyframes: list[Keyframe] | None = None
    motion_payload: bytes | None = None
    motion_tag = TAG_MOTN
    base: BaseLayer | None = None
    version = data[4]
    while True:
        if len(data) - pos < 8:
            raise BitstreamError(f"truncated stream: chunk header expected at byte {pos}")
        tag = data[pos : pos + 4]
        (length,) = struct.unpack_from("<I", data, pos + 4)
        if not set(tag) <= _TAG_CHARS:
            raise BitstreamError(f"invalid chunk tag {tag!r} at byte {pos}")
        end = pos + 8 + length
        if end + 4 > len(data):
            raise BitstreamError(f"truncated stream: chunk {tag!r} at byte {pos} is cut short")
        (crc,) = struct.unpack_from("<I", data, end)
        if zlib.crc32(data[pos:end]) != crc:
            raise BitstreamError(f"CRC mismatch in chunk {tag!r} at byte {pos}")
        payload = data[pos + 8 : end]
        sizes["container"] += _CHUNK_FRAME
        pos = end + 4
        if header is None and tag != TAG_HEAD:
            raise BitstreamError(f"first chunk must be HEAD, got {tag!r}")
        if tag == TAG_HEAD:
            if header is not None:
                raise BitstreamError("duplicate HEAD chunk")
            header = _unpack_header(payload)
            sizes["header"] += len(payload)
        elif tag == TAG_SIMG:
            if motion_payload is not None or keyframes is not None:
                raise BitstreamError("SIMG chunk after the KEYF or motion chunk")
            if len(payload) < 2:
                raise BitstreamError("empty SIMG chunk")
            codec = _IMAGE_CODEC_NAMES.get(payload[0])
            if codec is None:
                raise BitstreamError(f"unknown source image codec id {payload[0]}")
            images.append(EncodedImage(codec, payload[1:]))
            sizes["image"] += len(payload)
        elif tag == TAG_KEYF:
            if version < 3:
                raise BitstreamError(f"KEYF chunk in a version {version} stream")
            if keyframes is not None or motion_payload is not None:
                raise BitstreamError("KEYF chunk after another KEYF or the motion chunk")
            keyframes = _unpack_keyframes(payload)
            sizes["header"] += len(payload)
        elif tag in (TAG_MOTN, TAG_MOTA, TAG_BASE):
            if motion_payload is not None:
                raise BitstreamError("more than one motion or base layer chunk (MOTN/MOTA/BASE)")
            if not images:
                raise BitstreamError(f"{tag.decode()} chunk before any SIMG chunk")
            if tag == TAG_MOTA and version < 2:
                raise BitstreamError("MOTA chunk in a version 1 stream")
            if tag == TAG_BASE and version < 4:
                raise BitstreamError(f"BASE chunk in a version {version} stream")
            if tag != TAG_BASE and version >= 4:
                raise BitstreamError(
                    f"{tag.decode()} chunk in a version {version} stream (BASE expected)"
                )
            motion_payload, motion_tag = payload, tag
            sizes["base" if tag == TAG_BASE else "motion"] += len(payload)
        elif tag == TAG_END:
            if motion_payload is None:
                raise BitstreamError("END chunk before the motion chunk")
            if payload:
                raise BitstreamError("END chunk must be empty")
            if pos != len(data):
                raise BitstreamError(f"{len(data) - pos} bytes of trailing data after END")
            break
        elif tag == TAG_AUDIO:
            if audio is not None:
                raise BitstreamError("more than one opus chunk")
            audio = _unpack_audio(payload)
            sizes["audio"] += len(payload)
        elif 0x61 <= tag[0] <= 0x7A:
            sizes["container"] += len(payload)
        else:
            raise BitstreamError(f"unknown critical chunk {tag!r}")
    if len(images) > 1 and keyframes is None:
        raise BitstreamError(f"{len(images)} source images but no KEYF chunk to place them")
    if version == 3 and not keyframes:
        raise BitstreamError("a version 3 stream without keyframes (KEYF)")
    motion: QuantizedMotion | None = None
    coding = "range"
    if motion_tag == TAG_BASE:
        base = _unpack_base(motion_payload, version)
    elif motion_tag == TAG_MOTA:
        motion = decode_motion_range(motion_payload, header)
    else:
        motion, coding = decode_motion(motion_payload, header), "lzma2"
    stream = Bitstream(
        header=header,
        source_images=images,
        motion=motion,
        motion_coding=coding,
        audio=audio,
        keyframes=keyframes or [],
        sizes=sizes,
        base=base,
    )
    try:
        stream._validate_keyframes()
    except ValueError as exc:
        raise BitstreamError(f"invalid keyframes: {exc}") from exc
    if base is not None:
        try:
            stream._validate_base()
        except ValueError as exc:
            raise BitstreamError(f"invalid base layer: {exc}") from exc
    return stream, sizes


def _parse_safely(data: bytes) -> tuple[Bitstream, dict[str, int]]:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    try:
        return _parse(bytes(data))
    except BitstreamError:
        raise
    except _DECODE_ERRORS as exc:
        raise BitstreamError(f"malformed stream: {type(exc).__name__}: {exc}") from exc


def unpack(data: bytes) -> Bitstream:
    """Parse and fully check a ``.fomc`` stream.

    Raises:
        UnsupportedVersionError: the format version is not :data:`FORMAT_VERSION`.
        BitstreamError: anything else wrong (bad magic, truncation, CRC, bad fields...).
    """
    return _parse_safely(data)[0]


def section_sizes(data: bytes) -> dict[str, int]:
    """Bytes per part of a valid stream; the values sum to ``len(data)``.

    Keys: ``container`` (magic, version, chunk framing, END and skipped ancillary chunks),
    ``header`` (HEAD and KEYF payloads), ``image`` (SIMG payloads, codec byte included), ``motion``
    (MOTN or MOTA payload), ``base`` (BASE payload), ``audio`` (opus payload).
    """
    return _parse_safely(data)[1]


def save(path: str | os.PathLike, stream: Bitstream, overwrite: bool = False) -> int:
    """Write ``stream`` to ``path`` atomically; returns the number of bytes written."""
    data = pack(stream)
    write_bytes_atomic(path, data, overwrite=overwrite)
    return len(data)


def read(path: str | os.PathLike) -> tuple[bytes, Bitstream]:
    """Read a ``.fomc`` file: its bytes (for sizes) and the parsed stream.

    Raises:
        InputError: the file is missing or unreadable.
        BitstreamError: the file is not a valid ``.fomc`` stream.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(len(MAGIC))
            if head != MAGIC:
                raise BitstreamError(f"{os.fspath(path)} is not a .fomc file (bad magic)")
            data = head + f.read()
    except OSError as exc:
        raise InputError(f"cannot read {os.fspath(path)}: {exc.strerror or exc}") from exc
    try:
        return data, unpack(data)
    except BitstreamError as exc:
        raise type(exc)(f"{os.fspath(path)}: {exc}") from exc


def load(path: str | os.PathLike) -> Bitstream:
    """Read and parse a ``.fomc`` file (see :func:`read`)."""
    return read(path)[1]
