"""Quality metrics: known values, identical frames capped, ordering, streaming, VMAF."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import talking_head_frames

from fomcodec.eval import metrics
from fomcodec.eval.metrics import PSNR_CAP, QualityMeter, measure


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return talking_head_frames(6, (256, 256))


def noisy(frames: np.ndarray, amplitude: int, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(-amplitude, amplitude + 1, frames.shape)
    return np.clip(frames.astype(int) + noise, 0, 255).astype(np.uint8)


def test_identical_frames_are_capped_not_infinite(frames: np.ndarray) -> None:
    result = measure(frames, frames)
    assert result["psnr-rgb"] == PSNR_CAP and result["psnr-y"] == PSNR_CAP
    assert result["ssim-rgb"] == pytest.approx(1.0) and result["ms-ssim-rgb"] == pytest.approx(1.0)
    assert all(math.isfinite(v) for v in result.values())


def test_psnr_matches_the_textbook_value() -> None:
    reference = np.zeros((2, 8, 8, 3), np.uint8)
    distorted = reference + 16  # MSE 256 on every channel and on luma
    expected = 10 * math.log10(255**2 / 256)
    assert metrics.psnr_rgb(reference, distorted) == pytest.approx([expected, expected])
    assert metrics.psnr_y(reference, distorted) == pytest.approx([expected, expected])


def test_psnr_y_ignores_what_luma_cannot_see() -> None:
    reference = np.full((1, 8, 8, 3), 128, np.uint8)
    distorted = reference.copy()
    # +10 R and -5 G change luma by 0.055 levels, RGB by much more
    distorted[..., 0] += 10
    distorted[..., 1] -= 5
    assert metrics.psnr_y(reference, distorted)[0] > metrics.psnr_rgb(reference, distorted)[0] + 15


def test_more_noise_scores_lower_on_every_metric(frames: np.ndarray) -> None:
    light, heavy = measure(frames, noisy(frames, 4)), measure(frames, noisy(frames, 24))
    for name in ("psnr-y", "psnr-rgb", "ssim-rgb", "ms-ssim-rgb"):
        assert light[name] > heavy[name], name
    assert 25 < heavy["psnr-rgb"] < light["psnr-rgb"] < 50


def test_streaming_equals_one_batch(frames: np.ndarray) -> None:
    distorted = noisy(frames, 10)
    whole = measure(frames, distorted)
    with QualityMeter() as meter:
        for start in range(0, len(frames), 4):
            meter.update(frames[start : start + 4], distorted[start : start + 4])
        per_frame = meter.per_frame()
        streamed = meter.result()
    assert meter.frames == len(frames) and len(per_frame["psnr-rgb"]) == len(frames)
    for name, value in whole.items():
        assert streamed[name] == pytest.approx(value, rel=1e-6), name


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((2, 256, 256, 3), np.float32),
        np.zeros((256, 256, 3), np.uint8),
        np.zeros((3, 256, 256, 3), np.uint8),
    ],
)
def test_wrong_input_raises(frames: np.ndarray, bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        metrics.psnr_rgb(frames[:2], bad)


def test_ms_ssim_refuses_small_frames() -> None:
    small = np.zeros((1, 64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="MS-SSIM"):
        metrics.ms_ssim(small, small)


@pytest.mark.skipif(not metrics.vmaf_available(), reason="no ffmpeg with libvmaf")
def test_vmaf_ranks_distortion(frames: np.ndarray) -> None:
    same = measure(frames, frames, vmaf=True)["vmaf"]
    light = measure(frames, noisy(frames, 4), vmaf=True)["vmaf"]
    heavy = measure(frames, noisy(frames, 40), vmaf=True)["vmaf"]
    assert 95 < same <= 100
    assert same >= light > heavy >= 0


@pytest.mark.skipif(not metrics.vmaf_available(), reason="no ffmpeg with libvmaf")
def test_vmaf_temporary_files_are_removed(frames: np.ndarray) -> None:
    meter = QualityMeter(vmaf=True)
    meter.update(frames, frames)
    folder = meter._writers[0].path.parent
    assert folder.is_dir()
    assert len(meter.per_frame()["vmaf"]) == len(frames)
    assert not folder.exists()
    meter.close()


def test_y4m_writer_writes_yuv420(tmp_path, frames: np.ndarray) -> None:
    writer = metrics.Y4MWriter(tmp_path / "a.y4m", fps=25)
    writer.write(frames[:2])
    writer.close()
    data = (tmp_path / "a.y4m").read_bytes()
    header = data.split(b"\n", 1)[0]
    assert header.startswith(b"YUV4MPEG2 W256 H256 F25:1")
    assert len(data) == len(header) + 1 + 2 * (len(b"FRAME\n") + 256 * 256 * 3 // 2)
