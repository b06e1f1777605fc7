"""Shot cuts from the frames, and one crop box per shot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import talking_head_frames, write_clip

from fomcodec.media.crop import CropBox, CropSchedule
from fomcodec.media.face_crop import find_crop_schedule
from fomcodec.media.face_detection import HaarCascadeDetector
from fomcodec.media.sample_clip import public_domain_clip
from fomcodec.media.shots import CutDetector, find_cuts, find_shots
from fomcodec.media.video_io import read_frames


def flat(value: int, channel: int = 0) -> np.ndarray:
    frame = np.full((64, 96, 3), 40, np.uint8)
    frame[..., channel] = value
    return frame


def test_a_hard_cut_is_found_where_it_happens() -> None:
    frames = list(talking_head_frames(20, (96, 64))) + [flat(220, 2)] * 10
    assert find_cuts(frames, 25) == [20]


def test_motion_and_a_slow_fade_are_not_cuts() -> None:
    head = talking_head_frames(40, (96, 64))
    fade = [(flat(40) * (1 - a) + flat(220, 1) * a).astype(np.uint8) for a in np.linspace(0, 1, 50)]
    assert find_cuts(list(head), 25) == []
    assert find_cuts(fade, 25) == []


def test_cuts_closer_than_the_shortest_shot_are_one_cut() -> None:
    a, b = flat(220, 0), flat(220, 2)
    frames = [a] * 20 + [b] * 3 + [a] * 3 + [b] * 20  # a cut, then a flash-like flicker
    assert find_cuts(frames, 25, min_shot=0.5) == [20]
    assert find_cuts(frames, 25, min_shot=0.1) == [20, 23, 26]


def test_the_first_frame_is_never_a_cut() -> None:
    detector = CutDetector(25)
    assert not detector.is_cut(flat(200))
    with pytest.raises(ValueError, match="threshold"):
        CutDetector(25, threshold=0)


def test_crop_schedule_picks_the_box_of_each_frame() -> None:
    one, two = CropBox(0, 0, 10), CropBox(5, 5, 20)
    schedule = CropSchedule((0, 7), (one, two))
    assert [schedule.box_at(i) for i in (0, 6, 7, 100)] == [one, one, two, two]
    with pytest.raises(ValueError, match="increase"):
        CropSchedule((0, 7, 7), (one, two, one))
    with pytest.raises(ValueError, match="frame 0"):
        CropSchedule((3,), (one,))


def two_people(path: Path, frames: int = 20) -> Path:
    """A 480x270 clip: the portrait on the left, then (a cut) on the right of a grey frame."""
    head = public_domain_clip(frames)
    out = []
    for x in (20, 220):
        for face in head:
            canvas = np.full((270, 480, 3), 90, np.uint8)
            canvas[7:263, x : x + 256] = face
            out.append(canvas)
    return write_clip(path, out, fps=25)


def test_each_shot_gets_its_own_crop(tmp_path: Path) -> None:
    clip = two_people(tmp_path / "two.mp4")
    assert find_shots(clip) == [0, 20]
    schedule = find_crop_schedule(clip, HaarCascadeDetector())
    assert isinstance(schedule, CropSchedule) and schedule.starts == (0, 20)
    left, right = schedule.boxes
    assert left.x + left.size / 2 < 240 < right.x + right.size / 2
    frames = np.stack(list(read_frames(clip, 64, schedule)))
    assert len(frames) == 40
    # the face is centred in both shots: the middle of every crop is skin, not the grey frame
    middle = frames[:, 24:40, 24:40].reshape(40, -1, 3).mean(1)
    assert (np.abs(middle - 90).max(1) > 20).all()


def test_one_shot_gives_one_box(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "one.mp4", list(public_domain_clip(20)), fps=25)
    assert isinstance(find_crop_schedule(clip, HaarCascadeDetector()), CropBox)
