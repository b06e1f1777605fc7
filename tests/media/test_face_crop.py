"""Face detection and the automatic crop: stable boxes on a synthetic moving face, the face
inside the box in every frame, clean errors without a face, and the offline detector
fallback (face-alignment's weights cannot be downloaded -> Haar cascade, with one notice)."""

from __future__ import annotations

import math
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_clip

from fomcodec.cli.face_commands import crop_command
from fomcodec.errors import FomcError, InputError
from fomcodec.media import face_detection as fd
from fomcodec.media.crop import CropBox
from fomcodec.media.face_crop import (
    FaceTrack,
    box_for_track,
    find_crop,
    main_face,
    resolve_crop,
)
from fomcodec.media.face_detection import FaceBox, HaarCascadeDetector, load_face_detector
from fomcodec.media.video_io import probe_video, read_frames, read_whole_frames

FRAME_SIZE = (320, 192)
TILE = 128
PERIOD = 13  # frames per cycle of the head drift (not a multiple of the sampling step)
FPS = 10
CLIP_FRAMES = 3 * PERIOD


def _backdrop(width: int, height: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    grey = 60 + 50 * y / height + 12 * np.sin(x / 7.0) * np.cos(y / 5.0)
    return np.repeat(grey[..., None], 3, axis=2)


def _tile_origin(index: int) -> tuple[int, int]:
    """Where the talking-head tile sits: right of centre, drifting by +-16 / +-6 px."""
    width, height = FRAME_SIZE
    phase = 2 * math.pi * index / PERIOD
    return (
        round(0.58 * width - TILE / 2 + 16 * math.sin(phase)),
        round(0.45 * height - TILE / 2 + 6 * math.sin(2 * phase)),
    )


def moving_face_frame(index: int) -> np.ndarray:
    """conftest's synthetic face, off-centre in a wider frame and drifting over it."""
    from conftest import talking_head_frame

    width, height = FRAME_SIZE
    frame = _backdrop(width, height)
    ox, oy = _tile_origin(index)
    frame[oy : oy + TILE, ox : ox + TILE] = talking_head_frame(index, TILE, TILE)
    return np.clip(frame + 0.5, 0, 255).astype(np.uint8)


def face_extent(index: int) -> tuple[float, float, float, float]:
    """Bounding box (x0, y0, x1, y1) of the face ellipse drawn in frame ``index``
    (the geometry of conftest.talking_head_frame, moved by the tile's origin)."""
    phase = 2 * math.pi * index / 40
    cx = TILE / 2 + 0.06 * TILE * math.sin(phase)
    cy = TILE * 0.52 + 0.03 * TILE * math.sin(2 * phase + 0.5)
    tilt = 0.12 * math.sin(0.7 * phase)
    a, b = 0.25 * TILE, 0.33 * TILE
    ex = math.hypot(a * math.cos(tilt), b * math.sin(tilt))
    ey = math.hypot(a * math.sin(tilt), b * math.cos(tilt))
    ox, oy = _tile_origin(index)
    return ox + cx - ex, oy + cy - ey, ox + cx + ex, oy + cy + ey


@pytest.fixture(scope="module")
def haar() -> HaarCascadeDetector:
    return HaarCascadeDetector()


@pytest.fixture(scope="module")
def moving_clip(tmp_path_factory) -> Path:
    """3.9 s at 10 fps: three cycles of the head drifting across the frame."""
    folder = tmp_path_factory.mktemp("face")
    return write_clip(folder / "moving.mp4", [moving_face_frame(i) for i in range(CLIP_FRAMES)])


@pytest.fixture(scope="module")
def choice(moving_clip, haar):
    """The crop chosen with the default sampling (2 per second)."""
    return find_crop(moving_clip, haar)


@pytest.fixture(scope="module")
def faceless_clip(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("noface")
    width, height = FRAME_SIZE
    frames = [
        np.clip(np.roll(_backdrop(width, height), 3 * i, axis=1), 0, 255).astype(np.uint8)
        for i in range(8)
    ]
    return write_clip(folder / "empty_room.mp4", frames)


@pytest.fixture
def offline(monkeypatch, tmp_path) -> str:
    """No cached face-alignment weights, and a download URL that refuses connections."""
    for name in (
        "FOMC_S3FD_WEIGHTS",
        "FOMC_FACE_DETECTOR",
        "FOMC_OFFLINE",
        "FOMC_DOWNLOAD_TIMEOUT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/s3fd.pth"  # nothing listens there any more
    monkeypatch.setattr(fd, "S3FD_URL", url)
    return url


# --------------------------------------------------------------------------- frames


def test_read_whole_frames_samples_shrinks_and_rotates(make_clip):
    clip = make_clip("turned.mp4", frames=12, rotation=90)
    info = probe_video(clip)
    frames = list(read_whole_frames(clip, max_side=160, every=5))
    assert [index for index, _ in frames] == [0, 5, 10]
    assert (info.width, info.height) == (240, 320)
    assert all(frame.shape == (160, 120, 3) for _, frame in frames)
    full = list(read_whole_frames(clip, max_frames=2))
    assert [index for index, _ in full] == [0, 1] and full[0][1].shape == (320, 240, 3)
    with pytest.raises(ValueError):
        read_whole_frames(clip, every=0)


# --------------------------------------------------------------------------- detector


def test_haar_finds_the_synthetic_face_in_every_frame(haar):
    for index in range(0, PERIOD, 2):
        boxes = haar.detect(moving_face_frame(index))
        assert len(boxes) == 1, index
        x0, y0, x1, y1 = face_extent(index)
        cx, cy = boxes[0].centre
        assert x0 < cx < x1 and y0 < cy < y1
        assert 0.8 < boxes[0].height / (y1 - y0) < 1.4


def test_numpy_cascade_matches_opencv(haar):
    cv2 = pytest.importorskip("cv2")
    if not hasattr(cv2, "CascadeClassifier"):
        pytest.skip(f"cv2 {cv2.__version__} has no CascadeClassifier (OpenCV 5)")
    grey = fd._equalize(fd._grey(moving_face_frame(3)))
    ours = fd.NumpyHaarCascade(haar.path).detect(grey, 1.1, 3, 24)
    theirs, counts = cv2.CascadeClassifier(str(haar.path)).detectMultiScale2(
        grey, scaleFactor=1.1, minNeighbors=3, minSize=(24, 24)
    )
    assert len(ours) == len(theirs) == 1
    assert np.abs(np.array(ours[0][:4]) - np.array(theirs[0])).max() <= 2


def test_cascade_xml_is_found():
    path = fd.find_haar_cascade()
    assert path.name == fd.HAAR_CASCADE_NAME and path.stat().st_size > 100_000


@pytest.fixture
def no_mediapipe(monkeypatch):
    """As on a machine without the landmarks extra: MediaPipe's detector cannot load."""

    def unavailable(*args, **kwargs):
        raise fd.DetectorUnavailableError("mediapipe cannot be imported (test)")

    monkeypatch.setattr(fd, "MediaPipeFaceDetector", unavailable)


def test_offline_fallback_to_haar_with_one_notice(offline, no_mediapipe):
    messages: list[str] = []
    start = time.monotonic()
    detector = load_face_detector("auto", notify=messages.append)
    assert time.monotonic() - start < 10
    assert isinstance(detector, HaarCascadeDetector)
    assert len(messages) == 1
    assert messages[0].startswith(
        "fomc: face detector: OpenCV Haar cascade (face-alignment weights unavailable offline"
    )


def test_notice_goes_to_stderr(offline, no_mediapipe, capsys):
    load_face_detector("auto")
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fomc: face detector: OpenCV Haar cascade")


def test_forcing_a_detector(offline, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("face-alignment must not be tried")

    monkeypatch.setenv("FOMC_FACE_DETECTOR", "haar")
    monkeypatch.setattr(fd, "FaceAlignmentDetector", refuse)
    messages: list[str] = []
    assert isinstance(load_face_detector("auto", notify=messages.append), HaarCascadeDetector)
    assert messages[0].startswith("fomc: face detector: OpenCV Haar cascade (forced")
    monkeypatch.undo()


def test_forcing_face_alignment_offline_is_a_clean_error(offline):
    with pytest.raises(FomcError, match="face-alignment unavailable"):
        load_face_detector("face-alignment", notify=None)
    with pytest.raises(FomcError, match="unknown face detector"):
        load_face_detector("dlib", notify=None)


def test_unloadable_weights_fall_back_to_haar(offline, no_mediapipe, monkeypatch, tmp_path):
    pytest.importorskip("face_alignment.detection.sfd.sfd_detector")
    junk = tmp_path / "s3fd.pth"
    junk.write_text("<html>captive portal</html>")
    monkeypatch.setenv("FOMC_S3FD_WEIGHTS", str(junk))
    messages: list[str] = []
    assert isinstance(load_face_detector("auto", notify=messages.append), HaarCascadeDetector)
    assert "(face-alignment weights do not load" in messages[0]


def test_offline_auto_prefers_mediapipe_where_installed(offline):
    from fomcodec.eval.landmarks import landmarks_available
    from fomcodec.media.sample_clip import public_domain_clip

    if not landmarks_available():
        pytest.skip("mediapipe (the landmarks extra) is not installed")
    messages: list[str] = []
    detector = load_face_detector("auto", notify=messages.append)
    assert isinstance(detector, fd.MediaPipeFaceDetector) and len(messages) == 1
    assert messages[0].startswith("fomc: face detector: MediaPipe")
    frame = public_domain_clip(1)[0]
    boxes = detector.detect(frame)
    haar = HaarCascadeDetector().detect(frame)
    assert len(boxes) == 1 and len(haar) == 1
    # in Haar units (box_scale, box_shift) the two detectors agree on the face's square
    side = max(boxes[0].width, boxes[0].height) * detector.box_scale
    centre_y = boxes[0].centre[1] + detector.box_shift * max(boxes[0].width, boxes[0].height)
    assert abs(side / haar[0].width - 1) < 0.25
    assert abs(centre_y - haar[0].centre[1]) < 0.15 * haar[0].width
    assert detector.detect(np.full((240, 320, 3), 90, np.uint8)) == []


def test_download_from_a_silent_server_gives_up_quickly(tmp_path):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)  # accepts the connection, never answers
        url = f"http://127.0.0.1:{server.getsockname()[1]}/s3fd.pth"
        start = time.monotonic()
        with pytest.raises(fd.DetectorUnavailableError):
            fd.download_file(url, tmp_path / "weights.pth", timeout=0.5)
        assert time.monotonic() - start < 3
    assert not list(tmp_path.iterdir())


def test_offline_switch_skips_the_download(offline, monkeypatch):
    monkeypatch.setenv("FOMC_OFFLINE", "1")
    monkeypatch.setattr(fd, "download_file", lambda *a, **k: pytest.fail("downloaded"))
    with pytest.raises(fd.DetectorUnavailableError, match="downloads are off"):
        fd.find_s3fd_weights()


# --------------------------------------------------------------------------- crop box


def test_crop_box_is_stable_across_samplings(moving_clip, haar, choice):
    boxes = [choice.box] + [find_crop(moving_clip, haar, sample_fps=rate).box for rate in (3.4, 5)]
    sizes = [b.size for b in boxes]
    for box in boxes[1:]:
        tolerance = 0.06 * boxes[0].size
        assert abs(box.x - boxes[0].x) <= tolerance
        assert abs(box.y - boxes[0].y) <= tolerance
        assert abs(box.size - boxes[0].size) <= tolerance, sizes
    assert find_crop(moving_clip, haar, sample_fps=2).box == boxes[0]  # deterministic


def test_one_box_although_every_detection_moves(moving_clip, haar):
    choice = find_crop(moving_clip, haar, sample_fps=5)
    centres = np.array([b.centre for b in choice.track.boxes])
    assert choice.found == choice.samples == 20
    assert np.ptp(centres[:, 0]) > 20  # the face moves ...
    assert choice.motion > 0.2  # ... and the box was sized for it


def test_box_contains_the_face_over_the_whole_clip(choice):
    box = choice.box
    width, height = FRAME_SIZE
    assert box.x >= 0 and box.y >= 0
    assert box.x + box.size <= width and box.y + box.size <= height
    for index in range(CLIP_FRAMES):
        x0, y0, x1, y1 = face_extent(index)
        assert box.x <= x0 and x1 <= box.x + box.size, index
        assert box.y <= y0 and y1 <= box.y + box.size, index
        # VoxCeleb-like framing: the face is about half the crop, with room above it
        assert 0.35 < (y1 - y0) / box.size < 0.7
        assert y0 - box.y > 0.1 * box.size


def test_crop_is_off_centre_like_the_face(choice):
    box = choice.box
    width, _ = FRAME_SIZE
    assert box.x + box.size / 2 > width / 2 + 10


def test_no_face_is_a_clean_input_error(faceless_clip, haar):
    with pytest.raises(InputError, match=r"no face found.*--crop X,Y,SIZE"):
        find_crop(faceless_clip, haar)


def test_main_face_ignores_a_sporadic_false_positive():
    face = [FaceBox(100 + i, 50, 180 + i, 130) for i in range(6)]
    stray = FaceBox(10, 10, 40, 40)
    samples = [(i * 5, [face[i]] + ([stray] if i == 2 else [])) for i in range(6)]
    track = main_face(samples)
    assert len(track) == 6 and stray not in track.boxes


def test_main_face_prefers_the_large_constant_face_to_a_small_one():
    big = FaceBox(200, 100, 320, 220)
    small = FaceBox(20, 30, 60, 70)
    samples = [(i, [small, big] if i % 2 else [big, small]) for i in range(5)]
    assert main_face(samples).boxes == (big,) * 5


def test_box_is_clamped_into_the_frame():
    near_edge = FaceTrack((0, 1), (FaceBox(5, 300, 105, 400), FaceBox(7, 302, 107, 402)))
    box, _, overhang = box_for_track(near_edge, 640, 480)
    assert box.x == 0 and box.y + box.size <= 480 and not overhang
    assert box.size == round(1.8 * 100)


def test_box_shrinks_to_the_frame_then_overhangs():
    big = FaceTrack((0,), (FaceBox(100, 50, 280, 230),))
    box, _, overhang = box_for_track(big, 400, 300)  # 1.8 x 180 > 300: shrink to 300
    assert box.size == 300 and (box.x, box.y) == (40, 0) and not overhang
    huge = FaceTrack((0,), (FaceBox(50, 50, 330, 330),))
    box, _, overhang = box_for_track(huge, 400, 300)  # the face itself needs > 300
    assert box.size > 300 and overhang


def test_box_grows_with_the_head_motion():
    still = FaceTrack(tuple(range(5)), tuple(FaceBox(200, 100, 300, 200) for _ in range(5)))
    moving = FaceTrack(
        tuple(range(5)), tuple(FaceBox(200 + 30 * i, 100, 300 + 30 * i, 200) for i in range(5))
    )
    assert box_for_track(moving, 1280, 720)[0].size > box_for_track(still, 1280, 720)[0].size


def test_resolve_crop(moving_clip, haar, choice):
    assert resolve_crop(None, moving_clip) is None
    assert resolve_crop("centre", moving_clip) is None
    assert resolve_crop("10,20,100", moving_clip) == CropBox(10, 20, 100)
    assert resolve_crop("auto", moving_clip, detector=haar) == choice.box
    with pytest.raises(ValueError):
        resolve_crop("10,20", moving_clip)


# --------------------------------------------------------------------------- fomc crop


def test_crop_command_writes_a_256_video_and_prints_the_box(moving_clip, tmp_path):
    out = tmp_path / "face.mp4"
    result = CliRunner().invoke(
        crop_command, [str(moving_clip), "-o", str(out), "--detector", "haar", "--frames", "12"]
    )
    assert result.exit_code == 0, result.output
    box = resolve_crop(result.stdout.strip(), moving_clip)
    assert isinstance(box, CropBox)
    info = probe_video(out)
    assert (info.width, info.height) == (256, 256)
    assert sum(1 for _ in read_frames(out)) == 12
    assert "fomc: face detector: OpenCV Haar cascade" in result.stderr
    again = CliRunner().invoke(
        crop_command, [str(moving_clip), "-o", str(out), "--detector", "haar"]
    )
    assert again.exit_code == 1 and "already exists" in again.stderr


def test_crop_command_box_only(moving_clip, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        crop_command, [str(moving_clip), "--box-only", "--quiet", "--detector", "haar"]
    )
    assert result.exit_code == 0
    assert result.stdout.count(",") == 2 and result.stderr == ""
    assert list(tmp_path.iterdir()) == []


def test_crop_command_with_a_given_box(faceless_clip, tmp_path):
    out = tmp_path / "given.mp4"
    result = CliRunner().invoke(
        crop_command, [str(faceless_clip), "-o", str(out), "--crop", "10,20,150", "--size", "64"]
    )
    assert result.exit_code == 0 and result.stdout.strip() == "10,20,150"
    assert "face detector" not in result.stderr
    assert (probe_video(out).width, probe_video(out).height) == (64, 64)
    bad = CliRunner().invoke(crop_command, [str(faceless_clip), "--crop", "10,20"])
    assert bad.exit_code == 2


def test_crop_command_without_a_face_fails_cleanly(faceless_clip, tmp_path):
    out = tmp_path / "none.mp4"
    result = CliRunner().invoke(
        crop_command, [str(faceless_clip), "-o", str(out), "--detector", "haar"]
    )
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "no face found" in errors[0] and "--crop" in errors[0]
    assert "Traceback" not in result.output
    assert not out.exists()
