"""Training frames: clips decoded once to 256x256 uint8 arrays, sampled as (source, driving)
pairs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from fomcodec.media.video_io import read_frames

ClipReader = Callable[[Path, int], Iterable[np.ndarray]]


def build_frame_cache(
    clips: list[Path], cache_dir: Path, size: int = 256, reader: ClipReader = read_frames
) -> list[Path]:
    """Decode each clip once (centre square, as the encoder reads it) into
    ``cache_dir/<stem>.npy``; reuse existing files."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for clip in clips:
        target = cache_dir / f"{clip.stem}.npy"
        if not target.exists():
            frames = np.stack(list(reader(clip, size)))
            tmp = target.with_suffix(".tmp.npy")
            np.save(tmp, frames)
            tmp.replace(target)
        out.append(target)
    return out


def load_split(path: Path) -> dict[str, list[str]]:
    """A JSON ``{"train": [...], "validation": [...]}`` of clip file names."""
    data = json.loads(Path(path).read_text())
    return {"train": list(data["train"]), "validation": list(data["validation"])}


class FramePairSampler:
    """Random (source, driving) pairs from random clips, with FOMM-style augmentation:
    horizontal flips, time reversal and colour jitter, applied identically to both frames."""

    def __init__(self, arrays: list[np.ndarray], seed: int = 0, augment: bool = True) -> None:
        self.arrays = [a for a in arrays if len(a) >= 2]
        if not self.arrays:
            raise ValueError("no clip with at least two frames")
        self.rng = np.random.default_rng(seed)
        self.augment = augment

    def _jitter(self, pair: torch.Tensor) -> torch.Tensor:
        brightness = 1 + self.rng.uniform(-0.1, 0.1)
        contrast = 1 + self.rng.uniform(-0.1, 0.1)
        saturation = 1 + self.rng.uniform(-0.1, 0.1)
        mean = pair.mean(dim=(1, 2, 3), keepdim=True)
        pair = (pair - mean) * contrast + mean
        grey = pair.mean(dim=1, keepdim=True)
        pair = (pair - grey) * saturation + grey
        return (pair * brightness).clamp(0, 1)

    def sample(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Two (B, 3, H, W) float tensors in [0, 1]."""
        sources, drivings = [], []
        for _ in range(batch):
            frames = self.arrays[self.rng.integers(len(self.arrays))]
            i, j = self.rng.choice(len(frames), size=2, replace=False)
            pair = torch.from_numpy(np.stack([frames[i], frames[j]])).permute(0, 3, 1, 2)
            pair = pair.float() / 255
            if self.augment:
                if self.rng.random() < 0.5:
                    pair = pair.flip(-1)
                if self.rng.random() < 0.5:
                    pair = pair.flip(0)
                pair = self._jitter(pair)
            sources.append(pair[0])
            drivings.append(pair[1])
        return torch.stack(sources), torch.stack(drivings)
