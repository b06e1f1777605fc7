"""``fomc prepare``: a folder of raw clips -> a training set of 256x256 face crops.

For every clip: one stable crop box (:func:`fomcodec.media.face_crop.find_crop`), the cropped frames
as a high-quality H.264 MP4 (CRF 15) in ``OUT/clips/``, and a record in ``OUT/manifest.json``
(source, box, fps, frames, person, split). ``OUT/split.json`` lists the prepared clips as
``{"train": [...], "validation": [...]}`` (what :func:`fomcodec.training.dataset.load_split`
reads), so ``fomc train --data OUT/clips --split OUT/split.json`` trains on the crops.

The split is by person, never by file: clips are grouped by a person id (a ``people`` mapping,
clip file name -> id; without one, every clip is its own person) and whole people are held
out until about ``validation_fraction`` of the clips are in validation. An explicit split
(``split``: clip names) can be given instead; a person on both sides of it is an error.

Resumable and atomic: each MP4 appears only when complete (written beside and renamed), the
manifest is rewritten (atomically) after every clip, and a clip whose record and MP4 exist
with the same source size and settings is not redone. The split is recomputed on every run.
Clips where no face is found are listed under ``failed`` and retried on the next run.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from fomcodec.errors import FomcError, InputError
from fomcodec.fileio import write_bytes_atomic
from fomcodec.media.face_crop import find_crop
from fomcodec.media.face_detection import FaceDetector, load_face_detector
from fomcodec.media.video_io import VideoWriter, probe_video, read_frames

MANIFEST_NAME = "manifest.json"
SPLIT_NAME = "split.json"
CLIPS_DIR = "clips"
MANIFEST_VERSION = 1
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".avi", ".mpg", ".mpeg", ".webm", ".flv", ".wmv", ".ts"}
)

Notify = Callable[[str], None]


def _default_notify(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class PrepareResult:
    """What :func:`prepare_dataset` did."""

    out_dir: Path
    manifest_path: Path
    split_path: Path
    prepared: list[str] = field(default_factory=list)  # done in this run
    reused: list[str] = field(default_factory=list)  # already done, skipped
    failed: dict[str, str] = field(default_factory=dict)  # source -> reason
    train: list[str] = field(default_factory=list)
    validation: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{len(self.prepared)} clips prepared, {len(self.reused)} already done, "
            f"{len(self.failed)} failed; {len(self.train)} training and "
            f"{len(self.validation)} validation clips -> {self.out_dir}"
        )


def list_clips(in_dir: str | os.PathLike) -> list[Path]:
    """The video files directly in ``in_dir`` (by suffix), sorted by name."""
    folder = Path(in_dir)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    return sorted(
        (
            p
            for p in folder.iterdir()
            if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith(".")
        ),
        key=lambda p: p.name,
    )


def load_people(path: str | os.PathLike) -> dict[str, str]:
    """A clip -> person mapping from JSON: ``{"clip.mp4": "person", ...}`` or the same under a
    ``"people"`` key (beside a description)."""
    source = Path(path)
    try:
        data = json.loads(source.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"{source}: not a readable JSON people file ({err})") from None
    if isinstance(data, dict) and isinstance(data.get("people"), dict):
        data = data["people"]
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise InputError(f"{source}: expected a JSON object mapping clip names to person ids")
    return {str(k): v for k, v in data.items()}


def load_split_file(path: str | os.PathLike) -> dict[str, str]:
    """An explicit split, ``{"train": [...], "validation": [...]}`` -> clip name -> split."""
    source = Path(path)
    try:
        data = json.loads(source.read_text())
        train, validation = list(data["train"]), list(data["validation"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(
            f"{source}: not a split file with train and validation lists ({err})"
        ) from None
    both = sorted(set(train) & set(validation))
    if both:
        raise InputError(f"{source}: {both[0]} is in both train and validation")
    return {**{name: "train" for name in train}, **{name: "validation" for name in validation}}


def _lookup(mapping: Mapping[str, str], clip: Path) -> str | None:
    return mapping.get(clip.name, mapping.get(clip.stem))


def find_people_file(in_dir: str | os.PathLike, clips: Iterable[Path]) -> Path | None:
    """The people mapping that applies to ``in_dir``: its own ``people.json``, else a
    ``models/splits/*people*.json`` of this project naming every clip (the shared data's
    grouping, ``shared-data-people.json``)."""
    own = Path(in_dir) / "people.json"
    if own.is_file():
        return own
    names = [clip for clip in clips]
    from fomcodec.zoo import shipped_models_dir

    splits = shipped_models_dir() / "splits"
    if not names or not splits.is_dir():
        return None
    for candidate in sorted(splits.glob("*people*.json")):
        try:
            mapping = load_people(candidate)
        except InputError:
            continue
        if all(_lookup(mapping, clip) is not None for clip in names):
            return candidate
    return None


def split_by_person(
    people: Mapping[str, str], validation_fraction: float, seed: int = 0
) -> dict[str, str]:
    """Assign clips (keys of ``people``, clip -> person) to ``train`` or ``validation``.

    Whole people go to validation, in an order fixed by a hash of ``seed`` and the person id
    (stable when clips are added), skipping people whose clips would overshoot
    ``validation_fraction`` of all clips; at least one person is held out when the fraction
    is positive and at least one is kept for training when there are two or more.
    """
    if not 0 <= validation_fraction < 1:
        raise ValueError(f"validation fraction must be in [0, 1), not {validation_fraction}")
    clips_of: dict[str, list[str]] = {}
    for clip, person in people.items():
        clips_of.setdefault(person, []).append(clip)
    order = sorted(clips_of, key=lambda p: hashlib.sha256(f"{seed}:{p}".encode()).hexdigest())
    target = validation_fraction * len(people)
    held: list[str] = []
    count = 0
    for person in order:
        if len(held) + 1 >= len(order):
            break
        size = len(clips_of[person])
        if count + size <= math.ceil(target) and count < target:
            held.append(person)
            count += size
    if not held and validation_fraction > 0 and len(order) >= 2:
        held.append(min(order, key=lambda p: (len(clips_of[p]), order.index(p))))
    held_set = set(held)
    return {
        clip: ("validation" if person in held_set else "train") for clip, person in people.items()
    }


def _output_names(clips: list[Path]) -> dict[Path, str]:
    stems: dict[str, int] = {}
    for clip in clips:
        stems[clip.stem] = stems.get(clip.stem, 0) + 1
    return {
        clip: (f"{clip.stem}.mp4" if stems[clip.stem] == 1 else f"{clip.name}.mp4")
        for clip in clips
    }


def _fps_text(fps: Fraction) -> str:
    return str(fps.numerator) if fps.denominator == 1 else f"{fps.numerator}/{fps.denominator}"


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def prepare_dataset(
    in_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    people: Mapping[str, str] | str | os.PathLike | None = None,
    split: Mapping[str, str] | str | os.PathLike | None = None,
    validation_fraction: float = 0.15,
    seed: int = 0,
    detector: FaceDetector | None = None,
    detector_preference: str = "auto",
    device: str = "cpu",
    size: int = 256,
    crf: int = 15,
    max_frames: int | None = None,
    notify: Notify | None = _default_notify,
) -> PrepareResult:
    """Crop every clip in ``in_dir`` into ``out_dir`` (see the module docstring).

    ``people``: clip -> person mapping or a JSON file of one (None: :func:`find_people_file`,
    else one person per clip). ``split``: an explicit split (mapping clip -> ``train`` /
    ``validation``, or a split JSON file); clips it does not name are left out.
    ``detector`` None loads one only when a clip needs cropping.
    """
    say = notify or (lambda _message: None)
    source_dir, target = Path(in_dir), Path(out_dir)
    clips = list_clips(source_dir)
    if not clips:
        raise InputError(f"{source_dir}: no video files")
    if not 1 <= crf <= 51:
        raise ValueError(f"crf must be in 1..51, not {crf}")

    people_source = "one person per clip"
    if people is None:
        found = find_people_file(source_dir, clips)
        if found is not None:
            people, people_source = load_people(found), str(found)
    elif not isinstance(people, Mapping):
        people_source = str(people)
        people = load_people(people)
    if people is None:
        say("fomc: prepare: no people mapping (--people): every clip counts as a different person")
    person_of = {clip: ((_lookup(people, clip) if people else None) or clip.stem) for clip in clips}

    split_source = None
    if split is not None:
        if not isinstance(split, Mapping):
            split_source = str(split)
            split = load_split_file(split)
        chosen = {clip: _lookup(split, clip) for clip in clips}
        left_out = [clip.name for clip, side in chosen.items() if side is None]
        if left_out:
            say(f"fomc: prepare: {len(left_out)} clips not in the split file are left out")
        assignment = {clip: side for clip, side in chosen.items() if side is not None}
        sides_of: dict[str, set[str]] = {}
        for clip, side in assignment.items():
            sides_of.setdefault(person_of[clip], set()).add(side)
        mixed = sorted(person for person, sides in sides_of.items() if len(sides) > 1)
        if mixed:
            raise InputError(f"the split puts person {mixed[0]!r} in both training and validation")
    else:
        by_name = split_by_person(
            {clip.name: person_of[clip] for clip in clips}, validation_fraction, seed
        )
        assignment = {clip: by_name[clip.name] for clip in clips}

    clips_dir = target / CLIPS_DIR
    clips_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = target / MANIFEST_NAME
    split_path = target / SPLIT_NAME
    previous = {
        r.get("source"): r
        for r in _read_manifest(manifest_path).get("clips", [])
        if isinstance(r, dict)
    }
    names = _output_names(clips)
    settings = {"size": size, "crf": crf, "max_frames": max_frames}
    result = PrepareResult(target, manifest_path, split_path)
    records: dict[str, dict[str, Any]] = {}
    header = {
        "version": MANIFEST_VERSION,
        "source_dir": str(source_dir.resolve()),
        "people": people_source,
        "split_file": split_source,
        "validation_fraction": None if split_source else validation_fraction,
        "seed": seed,
        **settings,
    }

    def save() -> None:
        ordered = [records[name] for name in sorted(records)]
        manifest = {
            **header,
            "clips": ordered,
            "failed": [{"source": s, "error": e} for s, e in sorted(result.failed.items())],
        }
        write_bytes_atomic(
            manifest_path, (json.dumps(manifest, indent=1) + "\n").encode(), overwrite=True
        )

    todo = [clip for clip in clips if clip in assignment]
    for number, clip in enumerate(todo, 1):
        out_name = names[clip]
        out_path = clips_dir / out_name
        meta = {"person": person_of[clip], "split": assignment[clip]}
        old = previous.get(clip.name)
        if (
            old
            and old.get("file") == out_name
            and out_path.is_file()
            and old.get("source_bytes") == clip.stat().st_size
            and all(old.get(k) == v for k, v in settings.items())
        ):
            records[clip.name] = {**old, **meta}
            result.reused.append(clip.name)
            continue
        try:
            if detector is None:
                detector = load_face_detector(detector_preference, device=device, notify=notify)
            choice = find_crop(clip, detector)
            info = probe_video(clip)
            with VideoWriter(out_path, info.fps, overwrite=True, crf=crf) as writer:
                for frame in read_frames(clip, size, choice.box, max_frames):
                    writer.write(frame)
        except InputError as err:
            result.failed[clip.name] = str(err)
            say(f"fomc: prepare: [{number}/{len(todo)}] {clip.name}: skipped: {err}")
            save()
            continue
        records[clip.name] = {
            "file": out_name,
            "source": clip.name,
            "source_bytes": clip.stat().st_size,
            "source_size": [choice.width, choice.height],
            "box": [choice.box.x, choice.box.y, choice.box.size],
            "fps": _fps_text(Fraction(info.fps)),
            "frames": writer.frames_written,
            **meta,
            "detector": choice.detector,
            "face_found": f"{choice.found}/{choice.samples}",
            "motion": round(choice.motion, 3),
            "overhang": choice.overhang,
            "doubtful": choice.doubtful,
            **settings,
        }
        result.prepared.append(clip.name)
        say(f"fomc: prepare: [{number}/{len(todo)}] {clip.name}: {choice.summary()}")
        if choice.doubtful:
            say(
                f"fomc: warning: {clip.name}: the face moves a lot or is often not found "
                "(several shots?); check its crop"
            )
        save()

    save()
    for name in sorted(records):
        record = records[name]
        (result.validation if record["split"] == "validation" else result.train).append(
            record["file"]
        )
    description = (
        f"Person-level split of the face crops in {CLIPS_DIR}/ (fomc prepare): no "
        "validation person appears in a training clip."
    )
    split_data = {
        "description": description,
        "train": result.train,
        "validation": result.validation,
    }
    write_bytes_atomic(
        split_path, (json.dumps(split_data, indent=1) + "\n").encode(), overwrite=True
    )
    if not records and result.failed:
        raise FomcError(
            f"no clip could be prepared ({len(result.failed)} failed; see {manifest_path})"
        )
    return result
