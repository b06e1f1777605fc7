"""Hard cuts between shots, found from the frames themselves.

A cut is a frame whose content (hue, saturation and luma) differs from the frame before by
more than a threshold: PySceneDetect's ``ContentDetector``, fed one frame at a time, with cuts
closer than ``min_shot`` seconds to the previous one suppressed (a flash or a fast pan is not
a new shot). The decision for a frame is made when it arrives, so the encoder can place a
keyframe there without looking ahead.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction

import numpy as np

from fomcodec.media.video_io import probe_video, read_whole_frames

#: ContentDetector's default: mean HSV change (0-255 scale) that marks a cut.
DEFAULT_CUT_THRESHOLD = 27.0
#: Shortest shot, in seconds: a cut sooner than this after the previous one is ignored.
DEFAULT_MIN_SHOT = 0.5
#: Frames are compared at this size (longest side): cheap, and blind to sensor noise.
ANALYSIS_SIDE = 128


class CutDetector:
    """Feed frames in order (:meth:`is_cut`); a frame that starts a new shot returns True.
    The first frame is never a cut."""

    def __init__(
        self,
        fps: Fraction | float,
        threshold: float = DEFAULT_CUT_THRESHOLD,
        min_shot: float = DEFAULT_MIN_SHOT,
    ) -> None:
        from scenedetect import ContentDetector
        from scenedetect.detector import FlashFilter

        if threshold <= 0:
            raise ValueError(f"threshold must be > 0, not {threshold}")
        self.fps = float(fps) if fps else 25.0
        min_frames = max(1, round(min_shot * self.fps))
        self._detector = ContentDetector(
            threshold=threshold,
            min_scene_len=min_frames,
            filter_mode=FlashFilter.Mode.SUPPRESS,
        )
        self._index = 0

    def is_cut(self, rgb: np.ndarray) -> bool:
        """Whether this (H, W, 3) uint8 RGB frame is the first of a new shot."""
        import cv2
        from scenedetect import FrameTimecode

        height, width = rgb.shape[:2]
        scale = ANALYSIS_SIDE / max(height, width)
        if scale < 1:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        index, self._index = self._index, self._index + 1
        # SUPPRESS mode decides on the frame at hand: any cut returned is this frame
        cuts = self._detector.process_frame(FrameTimecode(index, fps=self.fps), bgr)
        return index > 0 and bool(cuts)


def find_cuts(
    frames: Iterable[np.ndarray],
    fps: Fraction | float,
    threshold: float = DEFAULT_CUT_THRESHOLD,
    min_shot: float = DEFAULT_MIN_SHOT,
) -> list[int]:
    """Indices of the frames that start a new shot (never 0)."""
    detector = CutDetector(fps, threshold, min_shot)
    return [i for i, frame in enumerate(frames) if detector.is_cut(frame)]


def find_shots(
    path: str | os.PathLike,
    threshold: float = DEFAULT_CUT_THRESHOLD,
    min_shot: float = DEFAULT_MIN_SHOT,
    max_frames: int | None = None,
) -> list[int]:
    """First frame of every shot of the video at ``path`` (always starts with 0), from its
    whole (uncropped) frames."""
    info = probe_video(path)
    frames = (f for _, f in read_whole_frames(path, ANALYSIS_SIDE, max_frames=max_frames))
    return [0, *find_cuts(frames, info.fps, threshold, min_shot)]
