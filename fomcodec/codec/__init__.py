"""The codec: everything between frames and bytes, both ways.

Owns the encoder and decoder (:mod:`~fomcodec.codec.pipeline`), the ``.fomc`` container
(:mod:`~fomcodec.codec.bitstream`, spec in docs/bitstream.md), when keyframes start
(:mod:`~fomcodec.codec.keyframes`), motion quantisation, prediction
and entropy coding (:mod:`~fomcodec.codec.quantization`, :mod:`~fomcodec.codec.motion`,
:mod:`~fomcodec.codec.motion_coding`), encoder-side refinement and presets, source-image
coding (:mod:`~fomcodec.codec.image_codec`, :mod:`~fomcodec.codec.avif_container`), the
frames filled in between sent motion (:mod:`~fomcodec.codec.frame_interpolation`) and folder
conversion (:mod:`~fomcodec.codec.batch`). May import ``media``, ``nets``, ``zoo`` and the
top-level helpers, never ``eval``, ``training`` or ``cli``. The container, quantisation and
motion coding need no torch, so ``fomc info`` starts fast; the torch-based names below are
imported on first use.
"""

from importlib import import_module
from typing import Any

_LAZY = {
    name: "fomcodec.codec.pipeline"
    for name in ("CodingStats", "Decoder", "Encoder", "decode", "encode")
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fomcodec.codec' has no attribute {name!r}")
