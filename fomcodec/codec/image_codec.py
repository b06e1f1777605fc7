"""Source-image coding with Pillow (AV1, AVIF, WebP, JPEG, PNG).

::

    RGB uint8 (H, W, 3) --encode_image--> EncodedImage(codec, bytes) --decode_image--> RGB uint8

``av1`` is AVIF less its container (:mod:`fomcodec.codec.avif_container`): the same pixels, 260
bytes fewer.

No metadata is written (no EXIF, XMP or ICC profile): every byte counts at 2-5 kbit/s.
Defaults and their measurements: ``docs/source-image-coding.md``.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from fomcodec.codec import avif_container
from fomcodec.codec.bitstream import IMAGE_CODEC_IDS, EncodedImage
from fomcodec.errors import BitstreamError

CODECS: tuple[str, ...] = tuple(IMAGE_CODEC_IDS)
DEFAULT_CODEC = "av1"
#: With keyframe refresh, 15 costs 29 % fewer bits than 30 for 0.07 dB (docs/benchmarks.md).
DEFAULT_QUALITY = 15
#: libavif speed (0 slowest .. 10 fastest) used for AVIF and AV1 encoding.
AVIF_SPEED = 2
#: Chroma subsampling for AVIF and JPEG; WebP (lossy) is always 4:2:0.
DEFAULT_SUBSAMPLING = "4:2:0"
SUBSAMPLINGS = ("4:2:0", "4:4:4")
MAX_SIDE = 16383

_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF", "av1": "AVIF"}


def _check_rgb(rgb: object) -> np.ndarray:
    if not isinstance(rgb, np.ndarray):
        raise ValueError(f"rgb must be a numpy array, got {type(rgb).__name__}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be uint8, got {rgb.dtype}")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must have shape (H, W, 3), got {rgb.shape}")
    if not (1 <= rgb.shape[0] <= MAX_SIDE and 1 <= rgb.shape[1] <= MAX_SIDE):
        raise ValueError(f"image sides must be 1..{MAX_SIDE}, got {rgb.shape[:2]}")
    return np.ascontiguousarray(rgb)


def encode_image(
    rgb: np.ndarray,
    codec: str = DEFAULT_CODEC,
    quality: int = DEFAULT_QUALITY,
    *,
    speed: int = AVIF_SPEED,
    subsampling: str = DEFAULT_SUBSAMPLING,
) -> EncodedImage:
    """Encode an RGB image.

    Args:
        rgb: (H, W, 3) uint8.
        codec: one of :data:`CODECS`. ``av1`` gives an ``avif`` image instead where this
            libavif lays its files out otherwise than :mod:`fomcodec.codec.avif_container` knows.
        quality: 0..100, higher is better (ignored by lossless PNG).
        speed: AVIF/AV1 encoder speed, 0 (slowest, smallest) .. 10 (fastest).
        subsampling: chroma subsampling for AVIF, AV1 and JPEG, one of :data:`SUBSAMPLINGS`.

    Raises:
        ValueError: bad array, unknown codec, quality, speed or subsampling.

    Example:
        >>> img = encode_image(np.zeros((64, 64, 3), np.uint8), "png")
        >>> decode_image(img).shape
        (64, 64, 3)
    """
    arr = _check_rgb(rgb)
    if codec not in CODECS:
        raise ValueError(f"unknown image codec {codec!r}; known: {CODECS}")
    if isinstance(quality, bool) or not isinstance(quality, int) or not 0 <= quality <= 100:
        raise ValueError(f"quality must be an int in 0..100, got {quality!r}")
    if isinstance(speed, bool) or not isinstance(speed, int) or not 0 <= speed <= 10:
        raise ValueError(f"speed must be an int in 0..10, got {speed!r}")
    if subsampling not in SUBSAMPLINGS:
        raise ValueError(f"subsampling must be one of {SUBSAMPLINGS}, got {subsampling!r}")
    im = Image.fromarray(arr)
    buf = io.BytesIO()
    if codec == "png":
        im.save(buf, format="PNG", optimize=True, compress_level=9)
    elif codec == "jpeg":
        im.save(buf, format="JPEG", quality=quality, optimize=True, subsampling=subsampling)
    elif codec == "webp":
        im.save(buf, format="WEBP", quality=quality, method=6)
    else:
        im.save(buf, format="AVIF", quality=quality, speed=speed, subsampling=subsampling)
        if codec == "av1":
            stripped = avif_container.strip(buf.getvalue())
            return EncodedImage(
                "avif" if stripped is None else "av1",
                buf.getvalue() if stripped is None else stripped,
            )
    return EncodedImage(codec=codec, data=buf.getvalue())


def decode_image(img: EncodedImage) -> np.ndarray:
    """Decode to a fresh (H, W, 3) uint8 RGB array.

    Raises:
        BitstreamError: the data is not a decodable image of the declared codec, or its
            sides exceed :data:`MAX_SIDE`.
    """
    if not isinstance(img, EncodedImage):
        raise ValueError(f"img must be an EncodedImage, got {type(img).__name__}")
    data = avif_container.rebuild(img.data) if img.codec == "av1" else img.data
    try:
        with Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[img.codec]]) as im:
            w, h = im.size
            if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE):
                raise BitstreamError(f"source image of {w}x{h} pixels is out of range")
            rgb = np.array(im.convert("RGB"), dtype=np.uint8)
    except BitstreamError:
        raise
    except Exception as exc:  # Pillow's plugins raise many types on malformed data
        raise BitstreamError(f"cannot decode {img.codec} source image: {exc}") from exc
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise BitstreamError(f"decoded source image has shape {rgb.shape}")
    return rgb
