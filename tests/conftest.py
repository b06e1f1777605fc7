"""Shared test fixtures: synthetic talking-head clips and bad input files.

Import the helpers directly where a fixture does not fit
(``from conftest import synthetic_talking_head, talking_head_frames``).
No torch here: every test module loads this file.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

SKIN = np.array([224, 172, 140], np.float32)
EYE = np.array([40, 28, 30], np.float32)
MOUTH = np.array([120, 36, 48], np.float32)
NOSE = np.array([198, 146, 118], np.float32)


def _background(width: int, height: int) -> np.ndarray:
    """A static, smooth but textured backdrop (sine gratings on a vertical gradient)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    texture = 0.5 + 0.18 * np.sin(x / 3.7) * np.sin(y / 2.9) + 0.12 * np.sin((x + 2 * y) / 9.0)
    gradient = 0.6 + 0.4 * y / max(height - 1, 1)
    base = np.array([70, 96, 130], np.float32)
    return base * (texture * gradient)[..., None] + np.array([30, 30, 20], np.float32)


def _blend(
    image: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    centre: tuple[float, float],
    radii: tuple[float, float],
    colour: np.ndarray,
) -> None:
    """Paint an anti-aliased axis-aligned ellipse (in face coordinates u, v) onto image."""
    ru, rv = max(radii[0], 0.5), max(radii[1], 0.5)
    dist = np.sqrt(((u - centre[0]) / ru) ** 2 + ((v - centre[1]) / rv) ** 2)
    alpha = np.clip(0.5 - (dist - 1.0) * min(ru, rv), 0.0, 1.0)[..., None]
    image *= 1.0 - alpha
    image += alpha * colour


def talking_head_frame(index: int, width: int = 320, height: int = 240) -> np.ndarray:
    """Frame ``index`` of the synthetic talking head, an (H, W, 3) uint8 RGB array.

    A skin-coloured ellipse with two eyes, a nose and a mouth that opens and closes,
    drifting and tilting smoothly over a textured background. Deterministic.
    """
    phase = 2 * math.pi * index / 40
    scale = min(width, height)
    cx = width / 2 + 0.06 * width * math.sin(phase)
    cy = height * 0.52 + 0.03 * height * math.sin(2 * phase + 0.5)
    tilt = 0.12 * math.sin(0.7 * phase)
    mouth_open = 0.5 + 0.5 * math.sin(1.7 * phase)
    a, b = 0.25 * scale, 0.33 * scale
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    u = (x - cx) * math.cos(tilt) + (y - cy) * math.sin(tilt)
    v = -(x - cx) * math.sin(tilt) + (y - cy) * math.cos(tilt)
    image = _background(width, height)
    shade = (1.0 - 0.15 * np.clip(v / b, -1, 1))[..., None]
    _blend(image, u, v, (0.0, 0.0), (a, b), SKIN * shade)
    for side in (-1, 1):
        _blend(image, u, v, (side * 0.38 * a, -0.25 * b), (0.14 * a, 0.09 * b), EYE)
    _blend(image, u, v, (0.0, 0.08 * b), (0.08 * a, 0.16 * b), NOSE)
    _blend(image, u, v, (0.0, 0.45 * b), (0.3 * a, (0.03 + 0.12 * mouth_open) * b), MOUTH)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def talking_head_frames(frames: int = 25, size: tuple[int, int] = (320, 240)) -> np.ndarray:
    """All frames of the synthetic clip as one (N, H, W, 3) uint8 array."""
    return np.stack([talking_head_frame(i, *size) for i in range(frames)])


def two_shots(frames: int = 30) -> np.ndarray:
    """Two shots of ``frames`` each, 256x256: the synthetic head, then (a cut) the same head
    upside down and tinted."""
    first = talking_head_frames(frames, (256, 256))
    second = (first[:, ::-1] * np.array([0.5, 0.9, 1.3])).clip(0, 255).astype(np.uint8)
    return np.concatenate([first, second])


def synthetic_talking_head(
    path: str | Path,
    frames: int = 25,
    size: tuple[int, int] = (320, 240),
    fps: int | Fraction = 25,
    *,
    pix_fmt: str | None = None,
    crf: int = 12,
    rotation: int = 0,
    sample_aspect_ratio: Fraction | None = None,
) -> Path:
    """Write the synthetic talking head to ``path`` (H.264 via PyAV) and return the path.

    ``pix_fmt`` defaults to yuv420p (yuv444p for odd sizes); ``rotation`` sets the
    container's display rotation (degrees counter-clockwise).
    """
    width, height = size
    path = Path(path)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(
            "libx264", rate=Fraction(fps), options={"crf": str(crf), "preset": "veryfast"}
        )
        stream.width, stream.height = width, height
        stream.pix_fmt = pix_fmt or ("yuv444p" if width % 2 or height % 2 else "yuv420p")
        if sample_aspect_ratio is not None:
            stream.codec_context.sample_aspect_ratio = sample_aspect_ratio
        if rotation:
            stream.set_display_rotation(rotation)
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(talking_head_frame(index, width, height), "rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.fixture
def synthetic_clip(tmp_path: Path) -> Path:
    """A 1 s, 25 fps, 320x240 synthetic talking-head MP4."""
    return synthetic_talking_head(tmp_path / "talking_head.mp4")


@pytest.fixture
def make_clip(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_clip(name="clip.mp4", **synthetic_talking_head options)``."""

    def make(name: str = "clip.mp4", **options: object) -> Path:
        return synthetic_talking_head(tmp_path / name, **options)

    return make


@pytest.fixture
def not_a_video(tmp_path: Path) -> Path:
    """A text file named like a video."""
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 20)
    return path


@pytest.fixture
def empty_file(tmp_path: Path) -> Path:
    """A zero-byte file named like a video."""
    path = tmp_path / "empty.mp4"
    path.touch()
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The project's shared reference data folder (``../shared``); skips if absent."""
    path = REPO_ROOT.parent / "shared"
    if not path.is_dir():
        pytest.skip(f"{path} not found: reference data (real clips, weights) is not available")
    return path


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    """Write RGB ``frames`` as an H.264 clip (CRF 14) and return the path."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(
            "libx264", rate=Fraction(fps), options={"crf": "14", "preset": "veryfast"}
        )
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, "rgb24")))
        container.mux(stream.encode(None))
    return path


@pytest.fixture
def one_thread():
    """torch on one thread for the test (small networks run faster so), restored after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
