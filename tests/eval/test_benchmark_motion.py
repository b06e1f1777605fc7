"""The motion measure behind docs/interpolation.md's by-motion table."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "evaluate_interpolation.py"


@pytest.fixture(scope="module")
def dominant_shift():
    spec = importlib.util.spec_from_file_location("evaluate_interpolation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dominant_shift


def textured_frame(seed: int = 0, size: int = 256) -> np.ndarray:
    noise = np.random.default_rng(seed).random((size, size, 3))
    smooth = gaussian_filter(noise, sigma=(3, 3, 0))
    return ((smooth - smooth.min()) / np.ptp(smooth) * 255).astype(np.uint8)


@pytest.mark.parametrize(("dy", "dx"), [(0, 0), (3, -5), (-7, 2), (0, 12)])
def test_dominant_shift_finds_a_whole_frame_translation(dominant_shift, dy, dx):
    frame = textured_frame()
    moved = np.roll(frame, (dy, dx), axis=(0, 1))
    found = dominant_shift(frame[None], moved[None])
    assert found.shape == (1,)
    assert found[0] == pytest.approx(np.hypot(dy, dx), abs=0.2)


def test_dominant_shift_is_per_pair(dominant_shift):
    frame = textured_frame(1)
    first = np.stack([frame, frame])
    second = np.stack([frame, np.roll(frame, 4, axis=1)])
    found = dominant_shift(first, second)
    assert found[0] == pytest.approx(0, abs=0.2)
    assert found[1] == pytest.approx(4, abs=0.2)


def test_dominant_shift_scales_rows_and_columns_separately(dominant_shift):
    wide = np.concatenate([textured_frame(2), textured_frame(3)], axis=1)  # 256 x 512
    moved = np.roll(wide, (0, 6), axis=(0, 1))
    assert dominant_shift(wide[None], moved[None])[0] == pytest.approx(6, abs=0.3)
    moved = np.roll(wide, (5, 0), axis=(0, 1))
    assert dominant_shift(wide[None], moved[None])[0] == pytest.approx(5, abs=0.3)
