"""Crop boxes: centring, parsing and applying them to frames."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import talking_head_frame
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from fomcodec.media.crop import CropBox, centre_square, crop_and_resize, parse_crop_box


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (320, 240, CropBox(40, 0, 240)),
        (240, 320, CropBox(0, 40, 240)),
        (256, 256, CropBox(0, 0, 256)),
        (1920, 1080, CropBox(420, 0, 1080)),
        (321, 240, CropBox(40, 0, 240)),
        (1, 1, CropBox(0, 0, 1)),
    ],
)
def test_centre_square(width: int, height: int, expected: CropBox) -> None:
    assert centre_square(width, height) == expected


@pytest.mark.parametrize(("width", "height"), [(0, 10), (10, 0), (-5, 5)])
def test_centre_square_rejects_empty_frames(width: int, height: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        centre_square(width, height)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10,20,100", CropBox(10, 20, 100)),
        (" 10 , 20 , 100 ", CropBox(10, 20, 100)),
        ("10,20,100,100", CropBox(10, 20, 100)),
        ("-16,-8,300", CropBox(-16, -8, 300)),
    ],
)
def test_parse_crop_box(text: str, expected: CropBox) -> None:
    assert parse_crop_box(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected 'x,y,size'"),
        ("10,20", "expected 'x,y,size'"),
        ("1,2,3,3,3", "expected 'x,y,size'"),
        ("a,b,c", "integers"),
        ("1.5,2,30", "integers"),
        ("10,20,,100", "integers"),
        ("10,20,100,90", "square"),
        ("10,20,0", "positive"),
        ("10,20,-4", "positive"),
    ],
)
def test_parse_crop_box_errors_name_the_text(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_crop_box(text)
    assert repr(text) in str(info.value)


def test_crop_box_round_trips_through_its_text() -> None:
    box = CropBox(-3, 17, 250)
    assert parse_crop_box(str(box)) == box


def test_crop_box_validates_fields() -> None:
    with pytest.raises(ValueError):
        CropBox(0, 0, 0)
    with pytest.raises(TypeError):
        CropBox(0, 0.5, 10)  # type: ignore[arg-type]
    box = CropBox(np.int64(3), np.int32(4), np.int16(5))  # type: ignore[arg-type]
    assert box == CropBox(3, 4, 5) and type(box.x) is int


def _frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("size", [64, 100, 128, 256])
def test_crop_inside_the_frame_matches_a_lanczos_resize(size: int) -> None:
    frame = talking_head_frame(3, 400, 300)
    out = crop_and_resize(frame, CropBox(50, 20, 260), size)
    region = Image.fromarray(np.ascontiguousarray(frame[20:280, 50:310]))
    reference = np.asarray(region.resize((size, size), Image.Resampling.LANCZOS), np.float64)
    assert out.shape == (size, size, 3) and out.dtype == np.uint8
    mse = np.mean((out - reference) ** 2)
    assert mse < 255**2 / 10**3.5, "within 35 dB PSNR of a pure Lanczos resize"


def test_crop_at_output_size_is_exact() -> None:
    frame = _frame(300, 300)
    out = crop_and_resize(frame, CropBox(10, 30, 256))
    np.testing.assert_array_equal(out, frame[30:286, 10:266])
    out[:] = 0
    assert frame.any(), "the result must not be a view into the frame"


def test_small_frames_are_enlarged() -> None:
    out = crop_and_resize(_frame(100, 120), CropBox(10, 0, 100), 256)
    assert out.shape == (256, 256, 3)


def test_box_past_the_edge_repeats_edge_pixels() -> None:
    frame = np.zeros((64, 64, 3), np.uint8)
    frame[:, :, 0] = np.arange(64, dtype=np.uint8)[None, :] * 4
    out = crop_and_resize(frame, CropBox(32, -16, 64), 64)
    np.testing.assert_array_equal(out[:, :32], frame[0:1, 32:].repeat(64, axis=0))
    np.testing.assert_array_equal(out[:, 32:, 0], np.full((64, 32), 63 * 4))


def test_box_past_the_edge_with_black_padding() -> None:
    frame = np.full((64, 64, 3), 200, np.uint8)
    out = crop_and_resize(frame, CropBox(-32, 0, 64), 64, pad="black")
    assert (out[:, :32] == 0).all() and (out[:, 32:] == 200).all()


@pytest.mark.parametrize("box", [CropBox(64, 0, 10), CropBox(-10, 0, 10), CropBox(0, 100, 50)])
def test_box_missing_the_frame_is_an_error(box: CropBox) -> None:
    with pytest.raises(ValueError, match="outside the 64x64 frame"):
        crop_and_resize(np.zeros((64, 64, 3), np.uint8), box)


@pytest.mark.parametrize(
    "frame",
    [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 3), np.float32)],
)
def test_bad_frames_are_rejected(frame: np.ndarray) -> None:
    with pytest.raises(ValueError, match="uint8"):
        crop_and_resize(frame, CropBox(0, 0, 8))


def test_bad_arguments_are_rejected() -> None:
    frame = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="size"):
        crop_and_resize(frame, CropBox(0, 0, 8), 0)
    with pytest.raises(ValueError, match="pad"):
        crop_and_resize(frame, CropBox(0, 0, 8), pad="mirror")  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(
    width=st.integers(1, 90),
    height=st.integers(1, 90),
    x=st.integers(-100, 100),
    y=st.integers(-100, 100),
    side=st.integers(1, 150),
    size=st.integers(1, 64),
    colour=st.tuples(*[st.integers(0, 255)] * 3),
)
def test_any_overlapping_box_of_a_flat_frame_gives_that_colour(
    width: int, height: int, x: int, y: int, side: int, size: int, colour: tuple[int, int, int]
) -> None:
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = colour
    box = CropBox(x, y, side)
    overlaps = x < width and y < height and x + side > 0 and y + side > 0
    if not overlaps:
        with pytest.raises(ValueError):
            crop_and_resize(frame, box, size)
        return
    out = crop_and_resize(frame, box, size)
    assert out.shape == (size, size, 3) and out.dtype == np.uint8
    assert (out == np.array(colour, np.uint8)).all()
