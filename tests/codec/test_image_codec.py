from __future__ import annotations

import math

import numpy as np
import pytest

from fomcodec.cli.common import IMAGE_CODECS
from fomcodec.codec import avif_container
from fomcodec.codec.bitstream import EncodedImage
from fomcodec.codec.image_codec import (
    CODECS,
    DEFAULT_CODEC,
    DEFAULT_QUALITY,
    decode_image,
    encode_image,
)
from fomcodec.errors import BitstreamError


def smooth_image(h: int = 96, w: int = 128) -> np.ndarray:
    """Gradients and a soft disc: easy content a lossy codec must reproduce well."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    disc = np.exp(-(((x - 0.5) ** 2 + (y - 0.4) ** 2) / 0.03))
    rgb = np.stack([0.2 + 0.6 * x, 0.3 + 0.5 * disc, 0.8 - 0.5 * y], axis=-1)
    return np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return smooth_image()


class TestSmoke:
    def test_constants(self) -> None:
        assert CODECS == ("png", "jpeg", "webp", "avif", "av1")
        assert DEFAULT_CODEC in CODECS and 0 <= DEFAULT_QUALITY <= 100
        assert sorted(IMAGE_CODECS) == sorted(CODECS)  # the CLI's choices

    @pytest.mark.parametrize("codec", CODECS)
    def test_round_trip_shape_and_dtype(self, codec: str) -> None:
        rgb = smooth_image(48, 80)
        enc = encode_image(rgb, codec)
        assert enc.codec == codec and isinstance(enc.data, bytes) and enc.data
        out = decode_image(enc)
        assert out.shape == (48, 80, 3) and out.dtype == np.uint8
        assert out.flags.writeable

    def test_default_is_av1_the_avif_image_without_its_container(self, image: np.ndarray) -> None:
        default, avif = encode_image(image), encode_image(image, "avif")
        assert default.codec == "av1" and b"ftyp" not in default.data
        assert len(avif.data) - len(default.data) == 260
        np.testing.assert_array_equal(decode_image(default), decode_image(avif))


class TestWrongInput:
    @pytest.mark.parametrize(
        "rgb,match",
        [
            (np.zeros((8, 8, 3), np.float32), "uint8"),
            (np.zeros((8, 8), np.uint8), "shape"),
            (np.zeros((8, 8, 4), np.uint8), "shape"),
            (np.zeros((0, 8, 3), np.uint8), "sides"),
            ([[[0, 0, 0]]], "numpy array"),
        ],
    )
    def test_bad_image(self, rgb: object, match: str) -> None:
        with pytest.raises(ValueError, match=match):
            encode_image(rgb)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "kwargs,match",
        [
            ({"codec": "gif"}, "codec"),
            ({"quality": 101}, "quality"),
            ({"quality": -1}, "quality"),
            ({"quality": True}, "quality"),
            ({"quality": 50.0}, "quality"),
            ({"speed": 11}, "speed"),
            ({"subsampling": "4:1:1"}, "subsampling"),
        ],
    )
    def test_bad_options(self, image: np.ndarray, kwargs: dict, match: str) -> None:
        with pytest.raises(ValueError, match=match):
            encode_image(image, **kwargs)

    @pytest.mark.parametrize("codec", CODECS)
    def test_garbage_bytes(self, codec: str) -> None:
        with pytest.raises(BitstreamError, match=codec):
            decode_image(EncodedImage(codec, b"\x00garbage" * 20))

    @pytest.mark.parametrize("codec", CODECS)
    def test_truncated_data(self, image: np.ndarray, codec: str) -> None:
        data = encode_image(image, codec, 90).data
        with pytest.raises(BitstreamError):
            decode_image(EncodedImage(codec, data[: len(data) // 2]))

    def test_codec_must_match_data(self, image: np.ndarray) -> None:
        png = encode_image(image, "png").data
        with pytest.raises(BitstreamError, match="jpeg"):
            decode_image(EncodedImage("jpeg", png))

    def test_decode_needs_encoded_image(self) -> None:
        with pytest.raises(ValueError, match="EncodedImage"):
            decode_image(b"\x89PNG")  # type: ignore[arg-type]


class TestNumerics:
    def test_png_is_lossless(self) -> None:
        noise = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
        np.testing.assert_array_equal(decode_image(encode_image(noise, "png")), noise)

    @pytest.mark.parametrize(
        "codec,quality,min_psnr",
        [("avif", 30, 36.0), ("avif", 80, 42.0), ("webp", 80, 38.0),
         ("jpeg", 90, 38.0)],
    )  # fmt: skip
    def test_psnr_on_smooth_image(
        self, image: np.ndarray, codec: str, quality: int, min_psnr: float
    ) -> None:
        out = decode_image(encode_image(image, codec, quality))
        assert psnr(image, out) >= min_psnr

    @pytest.mark.parametrize("codec", ["avif", "webp", "jpeg"])
    def test_quality_trades_bytes_for_fidelity(self, image: np.ndarray, codec: str) -> None:
        low, high = encode_image(image, codec, 20), encode_image(image, codec, 90)
        assert len(low.data) < len(high.data)
        assert psnr(image, decode_image(low)) < psnr(image, decode_image(high))

    def test_avif_444_keeps_more_chroma(self, image: np.ndarray) -> None:
        enc = encode_image(image, "avif", 80, subsampling="4:4:4")
        assert psnr(image, decode_image(enc)) >= 40.0

    @pytest.mark.parametrize("codec", CODECS)
    def test_no_metadata(self, image: np.ndarray, codec: str) -> None:
        data = encode_image(image, codec).data
        for marker in (b"Exif", b"ICC_PROFILE", b"iCCP", b"XMP", b"eXIf", b"tEXt", b"prof"):
            assert marker not in data


class TestAvifContainer:
    @pytest.mark.parametrize("subsampling", ["4:2:0", "4:4:4"])
    @pytest.mark.parametrize("shape", [(1, 1), (17, 31), (96, 128)])
    def test_strip_keeps_everything_rebuild_needs(
        self, shape: tuple[int, int], subsampling: str
    ) -> None:
        rgb = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)
        avif = encode_image(rgb, "avif", subsampling=subsampling).data
        stripped = avif_container.strip(avif)
        assert stripped is not None and len(stripped) == len(avif) - 260
        assert avif_container.rebuild(stripped) == avif

    def test_other_layouts_are_not_stripped(self, image: np.ndarray) -> None:
        avif = encode_image(image, "avif").data
        assert avif_container.strip(avif + b"\0\0\0\x08free") is None
        assert avif_container.strip(avif.replace(b"Color\0", b"Alpha\0")) is None
        assert avif_container.strip(encode_image(image, "png").data) is None
        assert avif_container.strip(b"") is None

    @pytest.mark.parametrize(
        "data,match",
        [(b"", "truncated"), (bytes(15), "truncated"), (bytes(4) + bytes(11) + b"\x12", "0x0")],
    )
    def test_rebuild_rejects_what_cannot_be_an_image(self, data: bytes, match: str) -> None:
        with pytest.raises(BitstreamError, match=match):
            avif_container.rebuild(data)
        with pytest.raises(BitstreamError):
            decode_image(EncodedImage("av1", data))
