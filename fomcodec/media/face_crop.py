"""Automatic face crop: one stable square box per clip, framed like the VoxCeleb crops FOMM
was trained on.

Frames are sampled across the clip (about ``sample_fps`` per second, at most
``max_samples``; every frame is decoded but only the sampled ones are converted), faces are
detected in them (:mod:`fomcodec.media.face_detection`), and the main face is the one found in the
most samples, weighted by size (a talking head is large and always there; a face on a poster
or a passer-by is not). Its boxes are aggregated robustly, and one box is chosen for the
whole clip, so the crop never jitters:

- size: :data:`SIDE_FACTOR` times the median face box (in Haar-cascade units; detectors are
  mapped onto these by their ``box_scale``), grown where needed so the face fits at every
  sampled position (5th to 95th percentile of the centres) with :data:`MIN_MARGIN` face
  sides to spare on each side;
- position: centred on the face's range of positions, raised by :data:`RAISE` of the side so
  the hair fits above and the chin with some neck below;
- clamped into the frame where the square fits; a box larger than the frame's short side is
  shrunk to it while the face still fits with :data:`TIGHT_MARGIN` (close-ups: a tighter
  crop rather than padding), else it overhangs and :func:`~fomcodec.media.crop.crop_and_resize`
  repeats the edge pixels.

The constants come from the shared FOMM-style 256x256 clips (DaGAN, DPE, TPSMM, LIA
``vox_driving3``): there the Haar box spans 0.49-0.61 of the side (median 0.555) and its centre
sits at 0.53-0.57 of the height, so such a clip maps onto (nearly) its whole frame.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np

from fomcodec.errors import InputError
from fomcodec.media.crop import CropBox, CropSchedule, parse_crop_box
from fomcodec.media.face_detection import FaceBox, FaceDetector, load_face_detector
from fomcodec.media.shots import DEFAULT_CUT_THRESHOLD, find_shots
from fomcodec.media.video_io import VideoInfo, probe_video, read_whole_frames

SIDE_FACTOR = 1.8  # crop side / face box side (Haar units): VoxCeleb-like margin
RAISE = 0.04  # crop centre above the face centre, as a fraction of the side
MIN_MARGIN = 0.3  # face box sides kept free on each side at the extremes of its motion
TIGHT_MARGIN = 0.1  # ... at the least, where the frame is too small for MIN_MARGIN
MIN_SUPPORT = 0.2  # the main face must be found in this fraction of the samples
DEFAULT_SAMPLE_FPS = 2.0
DEFAULT_MAX_SAMPLES = 32

NO_FACE_HINT = "pass --crop X,Y,SIZE (or --crop centre) to choose the square yourself"


@dataclass(frozen=True)
class FaceTrack:
    """The main face over the sampled frames: one box per frame where it was found, in
    display pixels and Haar-cascade units (``box_scale`` applied)."""

    indices: tuple[int, ...]
    boxes: tuple[FaceBox, ...]

    def __len__(self) -> int:
        return len(self.boxes)


@dataclass(frozen=True)
class CropChoice:
    """The chosen crop and how it was found."""

    box: CropBox
    width: int
    height: int
    samples: int  # frames examined
    found: int  # of those, frames where the main face was found
    face: FaceBox  # median face box (Haar units, display pixels)
    motion: float  # span of the face centre over the clip, in face box sides
    detector: str
    overhang: bool = False  # the box extends past the frame (edge pixels repeated)
    track: FaceTrack | None = field(default=None, repr=False, compare=False)

    @property
    def doubtful(self) -> bool:
        """The face moves a lot or is often missed (several shots? a crowd?): worth a look."""
        return self.motion > 0.75 or self.found < self.samples / 2

    def summary(self) -> str:
        """One line: box, frame, face size and how often the face was found."""
        extra = ", overhangs the frame" if self.overhang else ""
        return (
            f"crop {self.box} in {self.width}x{self.height}: face found in {self.found}/"
            f"{self.samples} sampled frames, face {self.face.height:.0f} px, motion "
            f"{self.motion:.2f} face{extra} ({self.detector})"
        )


def sample_every(
    info: VideoInfo, sample_fps: float = DEFAULT_SAMPLE_FPS, max_samples: int = DEFAULT_MAX_SAMPLES
) -> int:
    """Frame step giving about ``sample_fps`` samples a second, and at most ``max_samples``."""
    fps = float(info.fps) if info.fps else 25.0
    every = max(1, round(fps / max(sample_fps, 1e-6)))
    frames = info.frame_count or (round(info.duration * fps) if info.duration else None)
    if frames:
        every = max(every, math.ceil(frames / max_samples))
    return every


def detect_faces(
    path: str | os.PathLike,
    detector: FaceDetector,
    sample_fps: float = DEFAULT_SAMPLE_FPS,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    max_side: int | None = None,
    info: VideoInfo | None = None,
    min_size: int | None = None,
) -> tuple[VideoInfo, list[tuple[int, list[FaceBox]]]]:
    """Detect faces in frames sampled across the clip, shrunk to ``max_side`` (None: the
    detector's); ``min_size`` is passed on to the detector (in those shrunk pixels).

    Returns the clip's info and, per sampled frame, its index and the faces found, in display
    pixels and in the detector's own box convention.
    """
    info = info or probe_video(path)
    every = sample_every(info, sample_fps, max_samples)
    side = max_side or detector.max_side
    out = []
    for index, frame in read_whole_frames(path, side, every=every, max_frames=max_samples):
        sx, sy = info.width / frame.shape[1], info.height / frame.shape[0]
        found = detector.detect(frame, min_size=min_size)
        out.append((index, [box.scaled(sx, sy) for box in found]))
    return info, out


def _normalise(box: FaceBox, detector: FaceDetector) -> FaceBox:
    """A detector's box in Haar-cascade units: square, same centre convention."""
    scale = getattr(detector, "box_scale", 1.0)
    shift = getattr(detector, "box_shift", 0.0)
    side = max(box.width, box.height) * scale
    cx, cy = box.centre
    cy += shift * max(box.width, box.height)
    return FaceBox(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2, box.score)


def _matches(a: FaceBox, b: FaceBox, reach: float) -> bool:
    """Same face: centres within ``reach`` sides and sizes within a factor of 1.5."""
    ratio = a.height / b.height if b.height > 0 else math.inf
    if not 1 / 1.5 <= ratio <= 1.5:
        return False
    (ax, ay), (bx, by) = a.centre, b.centre
    return math.hypot(ax - bx, ay - by) <= reach * max(a.height, b.height)


def main_face(samples: Sequence[tuple[int, Sequence[FaceBox]]], reach: float = 0.6) -> FaceTrack:
    """The face found in the most samples (weighted by size), one box per sample.

    Each detection is scored by the summed sizes of the samples holding a matching face;
    the best one seeds the track, which then takes, in every sample, the matching face
    nearest to the track's running median, twice over (so a drifting head is followed).
    """
    seeds = [box for _, boxes in samples for box in boxes]
    if not seeds:
        return FaceTrack((), ())

    def support(seed: FaceBox) -> float:
        total = 0.0
        for _, boxes in samples:
            heights = [b.height for b in boxes if _matches(seed, b, reach)]
            total += max(heights, default=0.0)
        return total

    best = max(seeds, key=lambda s: (support(s), s.height))
    reference = best
    track: FaceTrack = FaceTrack((), ())
    for _ in range(2):
        indices, chosen = [], []
        for index, boxes in samples:
            near = [b for b in boxes if _matches(reference, b, reach * 1.5)]
            if near:
                cx, cy = reference.centre
                pick = min(near, key=lambda b: math.hypot(b.centre[0] - cx, b.centre[1] - cy))
                indices.append(index)
                chosen.append(pick)
        track = FaceTrack(tuple(indices), tuple(chosen))
        reference = _median_box(track.boxes)
    return track


def _median_box(boxes: Sequence[FaceBox]) -> FaceBox:
    cx = float(np.median([b.centre[0] for b in boxes]))
    cy = float(np.median([b.centre[1] for b in boxes]))
    side = float(np.median([b.height for b in boxes]))
    return FaceBox(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def box_for_track(
    track: FaceTrack, width: int, height: int, margin: float = 1.0
) -> tuple[CropBox, float, bool]:
    """The square crop for a face track (Haar units) in a ``width`` x ``height`` frame.

    Returns the box, the face's motion span (in face sides) and whether the box overhangs
    the frame. ``margin`` scales the VoxCeleb-like framing (1.0).
    """
    if not track.boxes:
        raise ValueError("empty face track")
    face = _median_box(track.boxes)
    size = face.height
    xs = np.array([b.centre[0] for b in track.boxes])
    ys = np.array([b.centre[1] for b in track.boxes])
    x_lo, x_hi = np.percentile(xs, [5, 95])
    y_lo, y_hi = np.percentile(ys, [5, 95])
    span = max(x_hi - x_lo, y_hi - y_lo)
    roomy = size * (1 + 2 * MIN_MARGIN) + span  # the face fits everywhere it went
    tight = size * (1 + 2 * TIGHT_MARGIN) + span
    side = max(SIDE_FACTOR * margin * size, roomy)
    short = min(width, height)
    if side > short:
        side = max(short, tight)  # a tighter crop rather than repeated edge pixels
    side = max(1, round(side))
    cx = (x_lo + x_hi) / 2
    cy = (y_lo + y_hi) / 2 - RAISE * side
    x = round(cx - side / 2)
    y = round(cy - side / 2)
    if side <= width:
        x = min(max(x, 0), width - side)
    if side <= height:
        y = min(max(y, 0), height - side)
    overhang = x < 0 or y < 0 or x + side > width or y + side > height
    return CropBox(x, y, side), float(span / size) if size else 0.0, overhang


def find_crop(
    path: str | os.PathLike,
    detector: FaceDetector | None = None,
    *,
    preference: str = "auto",
    device: str = "cpu",
    sample_fps: float = DEFAULT_SAMPLE_FPS,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    margin: float = 1.0,
) -> CropChoice:
    """Choose one stable square crop box for the clip at ``path``.

    ``detector`` None loads one (:func:`~fomcodec.media.face_detection.load_face_detector` with
    ``preference``). Where no face is found in the sampled frames, fewer of them are searched
    again for smaller faces at up to twice the resolution (wide shots). InputError when there
    is still none.
    """
    source = Path(path)
    detector = detector or load_face_detector(preference, device=device)
    info, samples = detect_faces(source, detector, sample_fps, max_samples)
    if not any(boxes for _, boxes in samples):
        longest = max(info.width, info.height)
        info, samples = detect_faces(
            source,
            detector,
            sample_fps,
            max(8, max_samples // 3),
            min(longest, 2 * detector.max_side),
            info,
            min_size=1,
        )
    normalised = [(i, [_normalise(b, detector) for b in boxes]) for i, boxes in samples]
    track = main_face(normalised)
    needed = max(1, math.ceil(MIN_SUPPORT * len(samples)))
    if len(track) < needed:
        seen = (
            f"reliably (only in {len(track)} of {len(samples)} sampled frames)"
            if len(track)
            else f"in {len(samples)} sampled frames"
        )
        raise InputError(f"{source}: no face found {seen} ({detector.name}); {NO_FACE_HINT}")
    box, motion, overhang = box_for_track(track, info.width, info.height, margin)
    return CropChoice(
        box=box,
        width=info.width,
        height=info.height,
        samples=len(samples),
        found=len(track),
        face=_median_box(track.boxes),
        motion=motion,
        detector=detector.name,
        overhang=overhang,
        track=track,
    )


def find_crop_schedule(
    path: str | os.PathLike,
    detector: FaceDetector | None = None,
    *,
    preference: str = "auto",
    device: str = "cpu",
    cut_threshold: float = DEFAULT_CUT_THRESHOLD,
    sample_fps: float = DEFAULT_SAMPLE_FPS,
    margin: float = 1.0,
) -> CropBox | CropSchedule:
    """One crop box per shot (shots split at hard cuts, :func:`~fomcodec.media.shots.find_shots`),
    so each person is framed in their own shot; the clip's single box (:func:`find_crop`)
    when it has one shot. A shot where no face is found reliably takes the box of the main
    face over the whole clip. InputError when no face is found at all.
    """
    source = Path(path)
    starts = find_shots(source, cut_threshold)
    detector = detector or load_face_detector(preference, device=device)
    if len(starts) == 1:
        return find_crop(source, detector, margin=margin).box
    info, found = detect_faces(source, detector, sample_fps, max_samples=2**31)
    samples = [(i, [_normalise(b, detector) for b in boxes]) for i, boxes in found]
    clip_track = main_face(samples)
    if not len(clip_track):
        raise InputError(
            f"{source}: no face found in {len(samples)} sampled frames ({detector.name}); "
            f"{NO_FACE_HINT}"
        )
    fallback = box_for_track(clip_track, info.width, info.height, margin)[0]
    boxes = []
    for start, end in pairwise([*starts, math.inf]):
        shot = [(i, found) for i, found in samples if start <= i < end]
        track = main_face(shot)
        if len(track) and len(track) >= MIN_SUPPORT * len(shot):
            boxes.append(box_for_track(track, info.width, info.height, margin)[0])
        else:
            boxes.append(fallback)
    return CropSchedule(tuple(starts), tuple(boxes))


def auto_crop_box(
    path: str | os.PathLike, detector: FaceDetector | None = None, **options: object
) -> CropBox:
    """The stable square crop box for the clip (see :func:`find_crop`); InputError (a
    FomcError) naming the clip when no face is found."""
    return find_crop(path, detector, **options).box  # type: ignore[arg-type]


def resolve_crop(
    value: str | None,
    clip: str | os.PathLike,
    detector: FaceDetector | None = None,
    preference: str = "auto",
    device: str = "cpu",
) -> CropBox | None:
    """What a ``--crop`` value means for ``clip``.

    None, ``centre``/``center``: None (the codec's centre square); ``auto``: the face crop
    (:func:`auto_crop_box`; InputError when no face is found); ``X,Y,SIZE`` or ``X,Y,W,H``:
    that box. A malformed value raises ValueError (a usage error for the caller to report).
    """
    if value is None:
        return None
    text = value.strip().lower()
    if text in ("centre", "center"):
        return None
    if text == "auto":
        return auto_crop_box(clip, detector, preference=preference, device=device)
    return parse_crop_box(value)
