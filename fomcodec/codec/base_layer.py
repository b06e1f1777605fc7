"""The base layer's settings (a light module: the CLI reads its defaults without loading
PyAV or OpenCV).

A base layer stream sends, instead of keypoints, the frames at low resolution coded with AV1
(:mod:`fomcodec.codec.base_video`); the decoder adds the detail of the source images
(:mod:`fomcodec.codec.fusion`). Defaults measured in docs/base-layer.md.
"""

from __future__ import annotations

from dataclasses import dataclass

#: SVT-AV1's preset for the base layer (0 slowest .. 13 fastest); 64x64 frames code fast.
BASE_PRESET = "4"
CRF_RANGE = (1, 63)
#: Frame-rate divisors of the base layer; the decoder interpolates the frames a power of two
#: drops and blends the others (:mod:`fomcodec.codec.fusion`).
FPS_DIVISORS = (1, 2, 3, 4, 8)
MIN_BASE_SIZE = 16
#: 128 pixels at a quarter of the frame rate: where AV1 itself is best below 10 kbit/s, and
#: fomc-base's best at about 7 kbit/s (docs/base-layer.md).
DEFAULT_BASE_SIZE = 128
DEFAULT_BASE_CRF = 54
DEFAULT_FPS_DIVISOR = 4
#: Frames per segment of an adaptive frame rate base layer: each segment codes every k-th of
#: its frames, k a power of two dividing it (so the gap into the next segment is k too).
ADAPTIVE_SEGMENT_FRAMES = 32
#: The fuser without a network (``--fuser detail``); any other name is a learned fuser
#: (:mod:`fomcodec.nets.fuser`), named in the stream's header like a model.
DETAIL_FUSER = "detail"
DEFAULT_FUSER = "fuse-fast"
#: Frame size of base layer streams (the codec's 256x256 crop).
BASE_FRAME_SIZE = 256
#: What a base layer stream names in the header's model field: no network decodes it.
BASE_LAYER_MODEL_NAME = "base-layer"


@dataclass(frozen=True)
class BaseLayerSettings:
    """How the encoder codes the base layer: ``size`` (even, square side in pixels), SVT-AV1
    ``crf`` and ``fps_divisor`` k (every k-th frame is coded), and the fuser the decoder is
    to use (:data:`DETAIL_FUSER`, or a learned fuser's name or weights path).

    ``adapt_db`` (None: off) makes the frame rate adaptive, for an even quality: each segment
    of :data:`ADAPTIVE_SEGMENT_FRAMES` frames drops the most frames (k up to ``fps_divisor``,
    a power of two) that leave it at ``adapt_db`` dB PSNR or better at the base size, as a
    trial coding and the decoder's frame interpolator make it
    (:func:`fomcodec.codec.base_video.segment_divisor`)."""

    size: int = DEFAULT_BASE_SIZE
    crf: int = DEFAULT_BASE_CRF
    fps_divisor: int = DEFAULT_FPS_DIVISOR
    fuser: str = DEFAULT_FUSER
    adapt_db: float | None = None

    def check(self, frame_size: int) -> None:
        """Raise ValueError unless these settings fit frames of ``frame_size`` pixels."""
        if self.size % 2 or not MIN_BASE_SIZE <= self.size <= frame_size:
            raise ValueError(
                f"base size must be even and in {MIN_BASE_SIZE}..{frame_size}, not {self.size}"
            )
        if not CRF_RANGE[0] <= self.crf <= CRF_RANGE[1]:
            raise ValueError(f"base CRF must be in {CRF_RANGE[0]}..{CRF_RANGE[1]}")
        if self.fps_divisor not in FPS_DIVISORS:
            raise ValueError(f"base frame-rate divisor must be one of {FPS_DIVISORS}")
        if self.adapt_db is not None:
            if self.fps_divisor & (self.fps_divisor - 1):
                raise ValueError(
                    f"an adaptive frame rate needs a power-of-two divisor, not {self.fps_divisor}"
                )
            if not 0 < self.adapt_db < 100:
                raise ValueError(f"adapt_db must be in (0, 100) dB, not {self.adapt_db}")


@dataclass(frozen=True)
class RatePoint:
    """One rung of the rate ladder ``fomc encode --kbps`` picks from: the source image
    quality and either keypoints (``base`` None: the encoder's keypoint defaults) or a base
    layer, with the mean rate measured on held-out clips."""

    kbps: float
    image_quality: int
    base: BaseLayerSettings | None = None

    @property
    def label(self) -> str:
        if self.base is None:
            return f"keypoints, q{self.image_quality}"
        b = self.base
        rate = f", 1/{b.fps_divisor} frame rate" if b.fps_divisor > 1 else ""
        if b.adapt_db is not None:
            rate = f", adaptive frame rate (1/{b.fps_divisor} at most, {b.adapt_db:g} dB)"
        return f"base layer {b.size}px crf{b.crf}{rate}, q{self.image_quality}"


#: The best points measured (PSNR against rate): mean .fomc rates (kbit/s, whole file, no
#: audio) over the first 250 frames of the seven held-out clips with the default fuser,
#: ``fomc compare`` in docs/base-layer.md (docs/comparison/fuse-fast/). Ascending in rate and
#: quality. Below 7 kbit/s the cheapest source image (q1) is the better use of bits: q10 adds
#: about 0.1 dB for 0.23 kbit/s, AV1 at a lower CRF about 0.4; below 4 kbit/s an eighth of
#: the frame rate (the decoder interpolates seven frames of eight) beats a quarter. The
#: default keypoint stream (fomc-lattice, 3.76 kbit/s and 25.6 dB on the same clips) is below
#: the 2.46 kbit/s rung in quality at more bits, so it is no rung; it stays the cheaper stream
#: on the calmest clip (1.8 kbit/s), where plain ``fomc encode`` makes it.
RATE_LADDER: tuple[RatePoint, ...] = (
    RatePoint(2.46, 1, BaseLayerSettings(64, 57, 8)),
    RatePoint(2.72, 1, BaseLayerSettings(96, 60, 8)),
    RatePoint(3.11, 1, BaseLayerSettings(96, 57, 8)),
    RatePoint(3.60, 1, BaseLayerSettings(64, 57, 4)),
    RatePoint(3.88, 1, BaseLayerSettings(96, 51, 8)),
    RatePoint(3.97, 1, BaseLayerSettings(128, 57, 8)),
    RatePoint(4.62, 1, BaseLayerSettings(96, 57, 4)),
    RatePoint(4.93, 1, BaseLayerSettings(128, 60, 4)),
    RatePoint(6.00, 5, BaseLayerSettings(128, 57, 4)),
    RatePoint(6.94, 1, BaseLayerSettings(128, 54, 4)),
    RatePoint(9.08, 15, BaseLayerSettings(128, 48, 4)),
    RatePoint(9.74, 15, BaseLayerSettings(128, 57, 2)),
    RatePoint(12.58, 15, BaseLayerSettings(128, 51, 2)),
    RatePoint(17.78, 15, BaseLayerSettings(96, 45, 1)),
    RatePoint(21.92, 15, BaseLayerSettings(128, 48, 1)),
    RatePoint(28.25, 25, BaseLayerSettings(128, 42, 1)),
)


def rate_point(kbps: float) -> RatePoint:
    """The rung of :data:`RATE_LADDER` with the most measured bits not above ``kbps`` (the
    cheapest rung when none fits). A clip's own rate can differ from the mean: see
    docs/base-layer.md."""
    if not kbps > 0:
        raise ValueError(f"the rate must be positive, not {kbps}")
    fitting = [point for point in RATE_LADDER if point.kbps <= kbps]
    return fitting[-1] if fitting else RATE_LADDER[0]
