"""Quality metrics between two stacks of RGB frames: PSNR (Y and RGB), SSIM, MS-SSIM, VMAF,
and the average keypoint distance (AKD) of facial landmarks.

::

    reference, distorted (N, H, W, 3) uint8, batch by batch
      --> per-frame PSNR-Y, PSNR-RGB, SSIM, MS-SSIM   (numpy / pytorch-msssim)
      --> two lossless Y4M files (yuv420p, BT.601)  --ffmpeg libvmaf--> per-frame VMAF
      --> means over the frames

Definitions (the same for every codec ``fomc compare`` measures):

- PSNR is computed per frame and then averaged over the frames; a frame identical to its
  reference scores :data:`PSNR_CAP` (100 dB) instead of infinity, so results stay finite JSON.
  ``psnr-rgb`` takes the mean squared error over all pixels and the three channels;
  ``psnr-y`` over BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` of the full-range RGB frames.
- ``ssim-rgb`` and ``ms-ssim-rgb``: pytorch-msssim (11-tap Gaussian window, sigma 1.5,
  data range 255, five MS-SSIM scales with the standard weights), averaged over channels per
  frame, then over the frames. MS-SSIM needs frames larger than 160 pixels a side.
- ``vmaf``: the ffmpeg binary of the imageio-ffmpeg wheel, whose libvmaf has the
  ``vmaf_v0.6.1`` model built in (PyAV's FFmpeg has no libvmaf). Both sequences are written to
  temporary Y4M files (yuv420p, BT.601 limited range: lossless for luma, which is all VMAF
  looks at) and scored with ``libvmaf=model=version=vmaf_v0.6.1``; the result is the mean of
  the per-frame scores. The model was trained for 1080p viewing: at 256x256 its numbers rank
  codecs but are not absolute quality.
- ``akd`` (lower is better): mean distance in pixels between the facial landmarks found on the
  reference and on the distorted frame (:mod:`fomcodec.eval.landmarks`), averaged over the frames
  where both have a face.
"""

from __future__ import annotations

import functools
import json
import math
import subprocess
import tempfile
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import av
import numpy as np
import torch

from fomcodec.errors import FomcError

PSNR_CAP = 100.0
VMAF_MODEL = "version=vmaf_v0.6.1"
#: Metric names, as used in results (CompressAI's naming: ``psnr-rgb``, ``ms-ssim-rgb``).
METRICS: tuple[str, ...] = ("psnr-y", "psnr-rgb", "ssim-rgb", "ms-ssim-rgb", "vmaf", "akd")
#: Metrics where a lower value is better.
LOWER_IS_BETTER = frozenset({"akd"})
_FRAME_METRICS = METRICS[:4]
_LUMA = np.array([0.299, 0.587, 0.114], np.float64)
_MS_SSIM_MIN_SIDE = 161
_CHUNK = 8


def _check_pair(reference: np.ndarray, distorted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    reference, distorted = np.asarray(reference), np.asarray(distorted)
    for name, arr in (("reference", reference), ("distorted", distorted)):
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
            raise ValueError(
                f"{name} frames must be (N, H, W, 3) uint8, got {arr.shape} {arr.dtype}"
            )
    if reference.shape != distorted.shape:
        raise ValueError(f"frame stacks differ in shape: {reference.shape} vs {distorted.shape}")
    return reference, distorted


def _psnr_from_mse(mse: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        values = 10 * np.log10(255.0**2 / mse)
    return np.minimum(values, PSNR_CAP)


def psnr_rgb(reference: np.ndarray, distorted: np.ndarray) -> np.ndarray:
    """Per-frame RGB PSNR in dB, capped at :data:`PSNR_CAP`.

    Shape:
        - reference, distorted: (N, H, W, 3) uint8
        - output: (N,) float64
    """
    reference, distorted = _check_pair(reference, distorted)
    diff = reference.astype(np.float64) - distorted
    return _psnr_from_mse(np.mean(diff * diff, axis=(1, 2, 3)))


def luma(frames: np.ndarray) -> np.ndarray:
    """BT.601 luma of (N, H, W, 3) uint8 RGB frames as (N, H, W) float64 in [0, 255]."""
    return np.asarray(frames, np.float64) @ _LUMA


def psnr_y(reference: np.ndarray, distorted: np.ndarray) -> np.ndarray:
    """Per-frame PSNR of BT.601 luma in dB, capped at :data:`PSNR_CAP`; shapes as
    :func:`psnr_rgb`."""
    reference, distorted = _check_pair(reference, distorted)
    diff = luma(reference) - luma(distorted)
    return _psnr_from_mse(np.mean(diff * diff, axis=(1, 2)))


def _to_tensor(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()


@torch.no_grad()
def _structural(reference: np.ndarray, distorted: np.ndarray, multiscale: bool) -> np.ndarray:
    from pytorch_msssim import ms_ssim, ssim

    reference, distorted = _check_pair(reference, distorted)
    if multiscale and min(reference.shape[1:3]) < _MS_SSIM_MIN_SIDE:
        raise ValueError(
            f"MS-SSIM needs frames of at least {_MS_SSIM_MIN_SIDE} pixels a side, "
            f"got {reference.shape[2]}x{reference.shape[1]}"
        )
    function = ms_ssim if multiscale else ssim
    values = []
    for start in range(0, len(reference), _CHUNK):
        x = _to_tensor(reference[start : start + _CHUNK])
        y = _to_tensor(distorted[start : start + _CHUNK])
        values.append(function(x, y, data_range=255, size_average=False).double().numpy())
    return np.concatenate(values) if values else np.zeros(0)


def ssim(reference: np.ndarray, distorted: np.ndarray) -> np.ndarray:
    """Per-frame SSIM (mean over the RGB channels); shapes as :func:`psnr_rgb`."""
    return _structural(reference, distorted, multiscale=False)


def ms_ssim(reference: np.ndarray, distorted: np.ndarray) -> np.ndarray:
    """Per-frame MS-SSIM (mean over the RGB channels); frames must be > 160 pixels a side;
    shapes as :func:`psnr_rgb`."""
    return _structural(reference, distorted, multiscale=True)


def frame_metrics(reference: np.ndarray, distorted: np.ndarray) -> dict[str, np.ndarray]:
    """Every per-frame metric but VMAF, by name (:data:`METRICS`)."""
    return {
        "psnr-y": psnr_y(reference, distorted),
        "psnr-rgb": psnr_rgb(reference, distorted),
        "ssim-rgb": ssim(reference, distorted),
        "ms-ssim-rgb": ms_ssim(reference, distorted),
    }


# --- VMAF ---------------------------------------------------------------------------------


def ffmpeg_exe() -> str | None:
    """The imageio-ffmpeg wheel's ffmpeg binary, or None when it is not installed."""
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:
        return None


@functools.cache
def vmaf_available() -> bool:
    """Whether :func:`ffmpeg_exe` exists and has the libvmaf filter."""
    exe = ffmpeg_exe()
    if exe is None:
        return False
    try:
        result = subprocess.run(
            [exe, "-hide_banner", "-filters"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return any(line.split()[1:2] == ["libvmaf"] for line in result.stdout.splitlines())


class Y4MWriter:
    """Streams RGB frames into a YUV4MPEG2 file as yuv420p (BT.601, limited range)."""

    def __init__(self, path: str | Path, fps: Fraction | int | float = 25) -> None:
        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(1_000_000)
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self._file: BinaryIO | None = open(self.path, "wb")  # noqa: SIM115 (closed in close())

    def write(self, frames: np.ndarray) -> None:
        """Append an (N, H, W, 3) uint8 batch (H and W even)."""
        if self._file is None:
            raise ValueError(f"{self.path}: Y4M writer is closed")
        for rgb in frames:
            height, width = rgb.shape[:2]
            if self.size is None:
                if width % 2 or height % 2:
                    raise ValueError(f"Y4M frames must have even sides, got {width}x{height}")
                self.size = (width, height)
                self._file.write(
                    f"YUV4MPEG2 W{width} H{height} F{self.fps.numerator}:"
                    f"{self.fps.denominator} Ip A1:1 C420jpeg\n".encode()
                )
            elif (width, height) != self.size:
                raise ValueError(f"frame is {width}x{height}, the Y4M file {self.size}")
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            yuv = frame.reformat(
                format="yuv420p",
                dst_colorspace=av.video.reformatter.Colorspace.ITU601,
                dst_color_range=av.video.reformatter.ColorRange.MPEG,
            )
            self._file.write(b"FRAME\n")
            self._file.write(yuv.to_ndarray().tobytes())
            self.frames += 1

    def close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()


def vmaf_files(
    reference: str | Path, distorted: str | Path, threads: int = 1, model: str = VMAF_MODEL
) -> np.ndarray:
    """Per-frame VMAF of two Y4M files of equal length (ffmpeg libvmaf)."""
    exe = ffmpeg_exe()
    if exe is None or not vmaf_available():
        raise FomcError(
            "VMAF needs the imageio-ffmpeg wheel's ffmpeg with libvmaf (pip install imageio-ffmpeg)"
        )
    with tempfile.TemporaryDirectory(prefix="fomc-vmaf-") as folder:
        log = Path(folder) / "vmaf.json"
        options = f"model={model}:n_threads={max(threads, 1)}:log_fmt=json:log_path={log}"
        command = [
            exe,
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            str(distorted),
            "-i",
            str(reference),
            "-lavfi",
            f"[0:v][1:v]libvmaf={options}",
            "-f",
            "null",
            "-",
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not log.is_file():
            detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise FomcError(f"VMAF failed: {detail}")
        frames = json.loads(log.read_text())["frames"]
    return np.array([frame["metrics"]["vmaf"] for frame in frames], np.float64)


class QualityMeter:
    """Streaming quality measurement of a distorted sequence against its reference.

    Feed matching batches with :meth:`update`; :meth:`per_frame` and :meth:`result` give the
    scores. With ``vmaf=True`` both sequences also go to temporary Y4M files that ffmpeg's
    libvmaf scores once, when the results are first asked for. Use as a context manager (or
    call :meth:`close`) so the temporary files are removed.

    Example:
        >>> with QualityMeter(vmaf=False) as meter:
        ...     meter.update(frames, frames)
        ...     meter.result()["psnr-rgb"]
        100.0
    """

    def __init__(
        self,
        vmaf: bool = False,
        fps: Fraction | int | float = 25,
        vmaf_threads: int = 1,
        akd: bool = False,
    ) -> None:
        self.vmaf = vmaf
        self.vmaf_threads = vmaf_threads
        self.frames = 0
        self._scores: dict[str, list[np.ndarray]] = {name: [] for name in _FRAME_METRICS}
        self._landmarker = None
        if akd:
            from fomcodec.eval.landmarks import FaceLandmarker

            self._landmarker = FaceLandmarker()
            self._scores["akd"] = []
        self._vmaf_scores: np.ndarray | None = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._writers: tuple[Y4MWriter, Y4MWriter] | None = None
        if vmaf:
            if not vmaf_available():
                raise FomcError("VMAF needs the imageio-ffmpeg wheel's ffmpeg with libvmaf")
            self._folder = tempfile.TemporaryDirectory(prefix="fomc-quality-")
            folder = Path(self._folder.name)
            self._writers = (
                Y4MWriter(folder / "reference.y4m", fps),
                Y4MWriter(folder / "distorted.y4m", fps),
            )

    def update(self, reference: np.ndarray, distorted: np.ndarray) -> None:
        """Add an (N, H, W, 3) uint8 batch of reference frames and the matching distorted."""
        if self._vmaf_scores is not None:
            raise ValueError("QualityMeter.update() after the VMAF scores were computed")
        reference, distorted = _check_pair(reference, distorted)
        for name, values in frame_metrics(reference, distorted).items():
            self._scores[name].append(values)
        if self._landmarker is not None:
            from fomcodec.eval.landmarks import keypoint_distances

            self._scores["akd"].append(keypoint_distances(reference, distorted, self._landmarker))
        if self._writers is not None:
            self._writers[0].write(reference)
            self._writers[1].write(distorted)
        self.frames += len(reference)

    def per_frame(self) -> dict[str, np.ndarray]:
        """Per-frame scores of every metric measured, by name."""
        if self.frames == 0:
            raise ValueError("no frames were measured")
        scores = {name: np.concatenate(parts) for name, parts in self._scores.items()}
        if self.vmaf:
            if self._vmaf_scores is None:
                assert self._writers is not None
                for writer in self._writers:
                    writer.close()
                self._vmaf_scores = vmaf_files(
                    self._writers[0].path, self._writers[1].path, self.vmaf_threads
                )
                self._remove_files()
                if len(self._vmaf_scores) != self.frames:
                    raise FomcError(
                        f"VMAF scored {len(self._vmaf_scores)} frames, expected {self.frames}"
                    )
            scores["vmaf"] = self._vmaf_scores
        return scores

    def result(self) -> dict[str, float]:
        """Mean of each metric over the frames (:data:`METRICS` order; no ``vmaf`` or ``akd``
        unless asked for; ``akd`` over the frames with a face in both, NaN if there is none)."""
        out = {}
        for name, values in self.per_frame().items():
            found = values[np.isfinite(values)] if name == "akd" else values
            out[name] = float(np.mean(found)) if len(found) else math.nan
        return out

    def _remove_files(self) -> None:
        if self._writers is not None:
            for writer in self._writers:
                writer.close()
        folder, self._folder = self._folder, None
        if folder is not None:
            folder.cleanup()

    def close(self) -> None:
        """Remove the temporary files and free the landmark detector (the scores already
        computed stay readable)."""
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None
        self._remove_files()

    def __enter__(self) -> QualityMeter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def measure(
    reference: np.ndarray | Iterable[np.ndarray],
    distorted: np.ndarray | Iterable[np.ndarray],
    fps: Fraction | int | float = 25,
    vmaf: bool = False,
) -> dict[str, float]:
    """Mean quality of ``distorted`` against ``reference``: arrays (N, H, W, 3) or matching
    iterables of batches; see the module docstring for the definitions."""
    if isinstance(reference, np.ndarray):
        reference, distorted = [reference], [np.asarray(distorted)]
    with QualityMeter(vmaf=vmaf, fps=fps) as meter:
        for ref, dist in zip(reference, distorted, strict=True):
            meter.update(ref, dist)
        return meter.result()


def finite_or_none(value: float) -> float | None:
    """``value`` for JSON: NaN and infinities become None."""
    return value if math.isfinite(value) else None


__all__ = [
    "METRICS",
    "PSNR_CAP",
    "VMAF_MODEL",
    "QualityMeter",
    "Y4MWriter",
    "ffmpeg_exe",
    "finite_or_none",
    "frame_metrics",
    "luma",
    "measure",
    "ms_ssim",
    "psnr_rgb",
    "psnr_y",
    "ssim",
    "vmaf_available",
    "vmaf_files",
]
