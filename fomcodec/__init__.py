"""fomcodec: a low-bitrate talking-head video codec built on the First Order Motion Model.

Public API::

    import fomcodec
    fomcodec.encode("talk.mp4", "talk.fomc")          # video -> bitstream
    fomcodec.decode("talk.fomc", "talk.decoded.mp4")  # bitstream -> video
    encoder = fomcodec.Encoder(model="fomc-lattice"); decoder = fomcodec.Decoder()
    model = fomcodec.load_model("fomc-warp")

The names that need torch are imported on first use, so that light modules (the bitstream,
``fomc info``) stay fast to import.
"""

from importlib import import_module
from typing import Any

from fomcodec.errors import (
    BitstreamError,
    FomcError,
    InputError,
    ModelError,
    ModelMismatchError,
    UnsupportedVersionError,
)

__version__ = "0.1.0"

_LAZY = {
    "CodingStats": "fomcodec.codec.pipeline",
    "Decoder": "fomcodec.codec.pipeline",
    "Encoder": "fomcodec.codec.pipeline",
    "decode": "fomcodec.codec.pipeline",
    "encode": "fomcodec.codec.pipeline",
    "DEFAULT_MODEL": "fomcodec.zoo",
    "load_model": "fomcodec.zoo",
    "registered_models": "fomcodec.zoo",
}

__all__ = [
    "BitstreamError",
    "FomcError",
    "InputError",
    "ModelError",
    "ModelMismatchError",
    "UnsupportedVersionError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fomcodec' has no attribute {name!r}")
