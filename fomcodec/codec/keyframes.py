"""When the encoder starts a new source image (keyframe), closed loop.

The encoder renders a few frames a second the way the decoder will (quantised motion, the
decoded source image) and measures them against the input. Quality is highest just after a
keyframe and falls as the head turns away from the source pose or the scene changes; once the
recent checks are ``refresh_db`` dB below the first checks after the keyframe, a new keyframe
is due. Shot cuts (:mod:`fomcodec.media.shots`) and a maximum interval start keyframes too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Default ``refresh_db`` (docs/benchmarks.md, "Keyframe refresh").
DEFAULT_REFRESH_DB: float | None = 3.0
#: Closed-loop checks a second.
CHECKS_PER_SECOND = 3
#: Checks averaged on each side of the comparison.
WINDOW = 3


def check_step(fps: float, motion_stride: int) -> int:
    """Frames between two checks: a multiple of the stride, about a third of a second."""
    return motion_stride * max(1, round(fps / motion_stride / CHECKS_PER_SECOND))


@dataclass
class RefreshMonitor:
    """The checks of one keyframe's segment; :meth:`due` says when to refresh."""

    drop: float
    checks: list[float] = field(default_factory=list)

    def due(self, psnr: float) -> bool:
        """Record one check (PSNR in dB); True once the mean of the last :data:`WINDOW`
        checks is ``drop`` dB below the mean of the first :data:`WINDOW`."""
        self.checks.append(psnr)
        if len(self.checks) < 2 * WINDOW:
            return False
        baseline = float(np.mean(self.checks[:WINDOW]))
        return float(np.mean(self.checks[-WINDOW:])) < baseline - self.drop
