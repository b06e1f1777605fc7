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
FPS_DIVISORS = (1, 2, 3, 4)
MIN_BASE_SIZE = 16
DEFAULT_BASE_SIZE = 64
DEFAULT_BASE_CRF = 51
DEFAULT_FPS_DIVISOR = 2
#: The fuser without a network (``--fuser detail``); any other name is a learned fuser
#: (:mod:`fomcodec.nets.fuser`), named in the stream's header like a model.
DETAIL_FUSER = "detail"
DEFAULT_FUSER = "fuse-small"
#: Frame size of base layer streams (the codec's 256x256 crop).
BASE_FRAME_SIZE = 256
#: What a base layer stream names in the header's model field: no network decodes it.
BASE_LAYER_MODEL_NAME = "base-layer"


@dataclass(frozen=True)
class BaseLayerSettings:
    """How the encoder codes the base layer: ``size`` (even, square side in pixels), SVT-AV1
    ``crf`` and ``fps_divisor`` k (every k-th frame is coded), and the fuser the decoder is
    to use (:data:`DETAIL_FUSER`, or a learned fuser's name or weights path)."""

    size: int = DEFAULT_BASE_SIZE
    crf: int = DEFAULT_BASE_CRF
    fps_divisor: int = DEFAULT_FPS_DIVISOR
    fuser: str = DEFAULT_FUSER

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
