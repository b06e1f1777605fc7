"""When the encoder starts a new source image (keyframe), closed loop.

The encoder renders a few frames a second the way the decoder will (quantised motion, the
decoded source image) and keeps the last :data:`WINDOW` of them. Once a second it tries the
frame at hand as a new source image: it renders those recent frames again from it, with the
motion a new keyframe would send, and starts the keyframe if that is at least ``refresh_db``
dB better than what the current source gave them. A keyframe costs a source image (about
1.5 kB at the default quality), so it is spent only where it buys picture, and never on a
frame that would be a worse source than the one in use (a head caught mid-turn, a blink).
Shot cuts (:mod:`fomcodec.media.shots`) and a maximum interval start keyframes as well.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the CLI reads the defaults here without loading torch
    import torch

    from fomcodec.nets.keypoint_detector import Keypoints

#: Default ``refresh_db`` (docs/benchmarks.md, "Keyframe refresh").
DEFAULT_REFRESH_DB: float | None = 2.0
#: Closed-loop checks a second.
CHECKS_PER_SECOND = 3
#: Recent checks a candidate keyframe is tried on, and checks between two tries.
WINDOW = 3


def check_step(fps: float, motion_stride: int) -> int:
    """Frames between two checks: a multiple of the stride, about a third of a second."""
    return motion_stride * max(1, round(fps / motion_stride / CHECKS_PER_SECOND))


@dataclass
class Check:
    """One checked frame: the input (1, 3, H, W), its detected keypoints and the PSNR of the
    frame the decoder will show for it."""

    target: torch.Tensor
    keypoints: Keypoints
    psnr: float


@dataclass
class RefreshMonitor:
    """The recent checks of one keyframe's segment, and when to try a new keyframe."""

    gain: float
    recent: deque[Check] = field(default_factory=lambda: deque(maxlen=WINDOW))
    since_try: int = 0

    def record(self, check: Check) -> None:
        self.recent.append(check)
        self.since_try += 1

    def try_due(self) -> bool:
        """Whether to try the next checked frame as a keyframe (a full window of checks
        since the keyframe or the last try)."""
        return len(self.recent) == WINDOW and self.since_try >= WINDOW

    def worth_it(self, candidate_psnr: list[float]) -> bool:
        """Record a try (PSNR of the recent checks rendered from the candidate); True when the
        candidate is ``gain`` dB better on average."""
        self.since_try = 0
        current = float(np.mean([c.psnr for c in self.recent]))
        return float(np.mean(candidate_psnr)) >= current + self.gain
