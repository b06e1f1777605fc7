"""AKD: MediaPipe Face Mesh landmarks on real-looking faces, distances that grow with motion,
and the metric in QualityMeter and fomc compare's curves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fomcodec.eval.landmarks import LANDMARK_COUNT, landmarks_available
from fomcodec.eval.metrics import QualityMeter
from fomcodec.media.sample_clip import public_domain_clip

pytestmark = pytest.mark.skipif(
    not landmarks_available(), reason="MediaPipe Face Mesh not installed (landmarks extra)"
)


@pytest.fixture(scope="module")
def landmarker():
    from fomcodec.eval.landmarks import FaceLandmarker

    with FaceLandmarker() as detector:
        yield detector


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    return public_domain_clip(1)[0]


def test_landmarks_of_a_portrait(landmarker, portrait) -> None:
    points = landmarker(portrait)
    assert points is not None and points.shape == (LANDMARK_COUNT, 2)
    height, width = portrait.shape[:2]
    assert (points[:, 0] > 0).all() and (points[:, 0] < width).all()
    assert (points[:, 1] > 0).all() and (points[:, 1] < height).all()


def test_no_face_gives_none(landmarker) -> None:
    assert landmarker(np.full((256, 256, 3), 128, np.uint8)) is None


def test_akd_is_zero_for_identical_frames_and_follows_a_shift(landmarker, portrait) -> None:
    from fomcodec.eval.landmarks import keypoint_distances

    shifted = np.roll(portrait, 6, axis=1)
    distances = keypoint_distances(
        np.stack([portrait, portrait]), np.stack([portrait, shifted]), landmarker
    )
    assert distances[0] == 0
    assert 4 < distances[1] < 8  # the face moved 6 px


def test_quality_meter_reports_akd_over_frames_with_faces(portrait) -> None:
    blank = np.full_like(portrait, 128)
    with QualityMeter(akd=True) as meter:
        meter.update(np.stack([portrait, blank]), np.stack([np.roll(portrait, 4, axis=0), blank]))
        per_frame = meter.per_frame()["akd"]
        result = meter.result()
    assert math.isnan(per_frame[1])
    assert result["akd"] == pytest.approx(per_frame[0]) and 2 < result["akd"] < 6


def test_compare_curves_treat_lower_akd_as_better() -> None:
    from fomcodec.eval.compare import Measurement, bd_rate, curve

    def row(codec: str, kbps: float, akd: float) -> Measurement:
        return Measurement(
            "mean", codec, f"{kbps}", {}, 10, 1.0, kbps * 125, kbps * 125, {"akd": akd}, 0.0, 0.0
        )

    rows = [
        row("av1", 2, 6.0),
        row("av1", 4, 4.0),
        row("av1", 8, 2.0),
        row("av1", 6, 5.0),
        row("fomc", 1, 6.0),
        row("fomc", 2, 4.0),
        row("fomc", 4, 2.0),
    ]
    rates, values, _ = curve(rows, "av1", "akd")
    assert rates.tolist() == [2, 4, 8] and values.tolist() == [6.0, 4.0, 2.0]
    assert bd_rate(rows, "av1", "akd").value < -30  # half the bits for the same AKD
