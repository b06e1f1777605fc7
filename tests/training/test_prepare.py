"""``fomc prepare``: raw clips -> 256x256 face-crop MP4s + manifest, split by person,
resumable and atomic; and the person grouping of the shared data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import REPO_ROOT, synthetic_talking_head

from fomcodec.cli.face_commands import prepare_command
from fomcodec.errors import InputError
from fomcodec.media.face_detection import HaarCascadeDetector
from fomcodec.media.video_io import probe_video, read_frames
from fomcodec.training import prepare as prep
from fomcodec.training.dataset import load_split
from fomcodec.training.prepare import load_people, prepare_dataset, split_by_person

PEOPLE_FILE = REPO_ROOT / "models" / "splits" / "shared-data-people.json"


class CountingDetector:
    """The Haar detector, counting the frames it is asked about."""

    def __init__(self) -> None:
        self.inner = HaarCascadeDetector()
        self.name, self.max_side = self.inner.name, self.inner.max_side
        self.box_scale, self.box_shift = self.inner.box_scale, self.inner.box_shift
        self.calls = 0

    def detect(self, frame, min_size=None):
        self.calls += 1
        return self.inner.detect(frame, min_size)


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory) -> Path:
    """Two tiny raw clips of two 'people' (16:9-ish and 4:3)."""
    folder = tmp_path_factory.mktemp("raw")
    synthetic_talking_head(folder / "anna_1.mp4", frames=10, size=(192, 128))
    synthetic_talking_head(folder / "bob_1.mp4", frames=8, size=(160, 120), fps=20)
    (folder / "notes.txt").write_text("not a clip\n")
    return folder


@pytest.fixture(scope="module")
def detector() -> CountingDetector:
    return CountingDetector()


@pytest.fixture(scope="module")
def prepared(raw_dir, tmp_path_factory, detector):
    out = tmp_path_factory.mktemp("prepared") / "set"
    result = prepare_dataset(
        raw_dir,
        out,
        people={"anna_1.mp4": "anna", "bob_1": "bob"},
        validation_fraction=0.5,
        detector=detector,
        notify=None,
    )
    return out, result


def test_prepare_writes_crops_and_manifest(prepared, raw_dir):
    out, result = prepared
    assert sorted(result.prepared) == ["anna_1.mp4", "bob_1.mp4"] and not result.failed
    manifest = json.loads((out / "manifest.json").read_text())
    records = {r["source"]: r for r in manifest["clips"]}
    assert set(records) == {"anna_1.mp4", "bob_1.mp4"}
    for source, frames, fps in (("anna_1.mp4", 10, "25"), ("bob_1.mp4", 8, "20")):
        record = records[source]
        assert record["frames"] == frames and record["fps"] == fps
        assert record["file"] == Path(source).with_suffix(".mp4").name
        x, y, side = record["box"]
        width, height = record["source_size"]
        assert side > 0.4 * min(width, height)
        # conftest's face fills 2/3 of the height: a VoxCeleb-like box overhangs the frame
        assert record["overhang"] == (x < 0 or y < 0 or x + side > width or y + side > height)
        video = out / "clips" / record["file"]
        info = probe_video(video)
        assert (info.width, info.height, info.frame_count) == (256, 256, frames)
        assert float(info.fps) == float(fps)
        first = next(iter(read_frames(video)))
        assert first.std() > 10  # a picture, not a blank frame
    assert {records["anna_1.mp4"]["person"], records["bob_1.mp4"]["person"]} == {"anna", "bob"}
    assert manifest["size"] == 256 and manifest["crf"] == 15
    assert not list(out.glob("**/*.part*"))


def test_split_is_by_person_and_loadable(prepared):
    out, result = prepared
    split = load_split(out / "split.json")
    assert sorted(split["train"] + split["validation"]) == ["anna_1.mp4", "bob_1.mp4"]
    assert len(split["train"]) == len(split["validation"]) == 1
    assert split["train"] == result.train and split["validation"] == result.validation


def test_prepare_resumes_without_redoing_clips(prepared, raw_dir, detector):
    out, _ = prepared
    before = {p.name: p.stat().st_mtime_ns for p in (out / "clips").iterdir()}
    calls = detector.calls
    again = prepare_dataset(
        raw_dir,
        out,
        people={"anna_1.mp4": "anna", "bob_1": "bob"},
        validation_fraction=0.5,
        detector=detector,
        notify=None,
    )
    assert again.prepared == [] and sorted(again.reused) == ["anna_1.mp4", "bob_1.mp4"]
    assert detector.calls == calls
    assert {p.name: p.stat().st_mtime_ns for p in (out / "clips").iterdir()} == before


def test_interrupted_clip_leaves_nothing_and_is_redone(raw_dir, tmp_path, monkeypatch):
    real_read = prep.read_frames

    def failing_read(*args, **kwargs):
        for number, frame in enumerate(real_read(*args, **kwargs)):
            if number == 3:
                raise KeyboardInterrupt
            yield frame

    detector = CountingDetector()
    monkeypatch.setattr(prep, "read_frames", failing_read)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(raw_dir, tmp_path / "set", detector=detector, notify=None)
    assert list((tmp_path / "set" / "clips").iterdir()) == []
    monkeypatch.setattr(prep, "read_frames", real_read)
    result = prepare_dataset(raw_dir, tmp_path / "set", detector=detector, notify=None)
    assert sorted(result.prepared) == ["anna_1.mp4", "bob_1.mp4"]


def test_clip_without_a_face_is_listed_as_failed(raw_dir, tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "anna_1.mp4").symlink_to(raw_dir / "anna_1.mp4")
    frames = np.full((6, 96, 128, 3), 90, np.uint8)
    frames[:, :, ::8] = 160  # stripes, no face
    from conftest import write_clip

    write_clip(folder / "wall.mp4", list(frames))
    messages: list[str] = []
    result = prepare_dataset(
        folder, tmp_path / "set", detector=HaarCascadeDetector(), notify=messages.append
    )
    assert result.prepared == ["anna_1.mp4"] and list(result.failed) == ["wall.mp4"]
    assert "no face found" in result.failed["wall.mp4"]
    manifest = json.loads((tmp_path / "set" / "manifest.json").read_text())
    assert manifest["failed"][0]["source"] == "wall.mp4"
    assert any("every clip counts as a different person" in m for m in messages)


def test_explicit_split_file(raw_dir, tmp_path):
    split_file = tmp_path / "split.json"
    split_file.write_text(json.dumps({"train": ["anna_1.mp4"], "validation": []}))
    result = prepare_dataset(
        raw_dir, tmp_path / "set", split=split_file, detector=HaarCascadeDetector(), notify=None
    )
    assert result.train == ["anna_1.mp4"] and result.validation == []
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps({"train": ["anna_1.mp4"], "validation": ["bob_1.mp4"]}))
    with pytest.raises(InputError, match="both training and validation"):
        prepare_dataset(
            raw_dir,
            tmp_path / "other",
            split=mixed,
            people={"anna_1.mp4": "x", "bob_1.mp4": "x"},
            notify=None,
        )


def test_prepare_command(raw_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FOMC_FACE_DETECTOR", "haar")
    people = tmp_path / "people.json"
    people.write_text(json.dumps({"people": {"anna_1.mp4": "anna", "bob_1.mp4": "bob"}}))
    out = tmp_path / "set"
    args = [str(raw_dir), "-o", str(out), "--people", str(people), "--frames", "4"]
    result = CliRunner().invoke(prepare_command, args)
    assert result.exit_code == 0, result.output
    assert "2 clips prepared" in result.stderr and "fomc: face detector:" in result.stderr
    assert probe_video(out / "clips" / "bob_1.mp4").frame_count == 4
    again = CliRunner().invoke(prepare_command, args)
    assert "0 clips prepared, 2 already done" in again.stderr
    assert "face detector" not in again.stderr  # nothing to detect: no detector loaded
    missing = CliRunner().invoke(prepare_command, [str(tmp_path / "nope"), "-o", str(out)])
    assert missing.exit_code == 1 and missing.stderr.startswith("fomc: error: ")


# --------------------------------------------------------------------------- person split


def test_split_by_person_keeps_people_together():
    people = {
        f"clip{i}.mp4": person
        for i, person in enumerate(["a", "a", "a", "b", "c", "c", "d", "e", "f", "g"])
    }
    split = split_by_person(people, 0.3)
    for person in set(people.values()):
        sides = {split[c] for c, p in people.items() if p == person}
        assert len(sides) == 1, person
    held = sum(side == "validation" for side in split.values())
    assert 1 <= held <= 3
    assert split == split_by_person(people, 0.3)  # deterministic


def test_split_by_person_edge_cases():
    assert set(split_by_person({"a": "x", "b": "y"}, 0.1).values()) == {"train", "validation"}
    assert set(split_by_person({"a": "x", "b": "x"}, 0.5).values()) == {"train"}
    assert set(split_by_person({"a": "x", "b": "y"}, 0.0).values()) == {"train"}
    with pytest.raises(ValueError):
        split_by_person({"a": "x"}, 1.0)


def test_shared_data_people_file():
    people = load_people(PEOPLE_FILE)
    assert (
        people["OpenTalker+SadTalker__WDA_AlexandriaOcasioCortez_000.mp4"]
        == people["OpenTalker+video-retalking__face_3.mp4"]
        == people["tencent-ailab+V-Express__short_case_AOC_gt.mp4"]
    )
    assert (
        people["Hangz-nju-cuhk+Talking-Face_PC-AVS__Audio_Source_00104.mp4"]
        == people["Hangz-nju-cuhk+Talking-Face_PC-AVS__Pose_Source_741400163.mp4"]
    )
    # The training split in use keeps every validation person out of training.
    split = load_split(REPO_ROOT / "models" / "splits" / "shared-data-v1.json")
    train = {people[c] for c in split["train"]}
    assert not train & {people[c] for c in split["validation"]}


def test_shared_data_people_file_covers_the_shared_clips(shared_dir):
    manifest = json.loads((shared_dir / "data" / "manifest.json").read_text())
    people = load_people(PEOPLE_FILE)
    assert {entry["file"] for entry in manifest} == set(people)
    clips = prep.list_clips(shared_dir / "data" / "clips")
    assert prep.find_people_file(shared_dir / "data" / "clips", clips) == PEOPLE_FILE
