"""Encoder presets in the ffmpeg manner: encode time against quality (torch-free, for the CLI)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    """How hard the encoder works on the motion: Adam steps per frame and their rate."""

    name: str
    refine_steps: int
    learning_rate: float = 2e-3


PRESETS = {p.name: p for p in (Preset("fast", 0), Preset("medium", 8), Preset("slow", 40))}
#: For FOMM models, where a step runs the generator: medium costs about 47x the encode time.
DEFAULT_PRESET = "fast"
#: For lattice warps, where a step is one warp: medium encodes in about 4x the time of fast
#: (23 against 6 ms a frame on 2 cores, still faster than real time) and gains 0.8 dB
#: (models/fomc-lattice.md).
DEFAULT_LATTICE_PRESET = "medium"


def preset(name: str) -> Preset:
    """The preset called ``name``; ValueError naming the known ones otherwise."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    return PRESETS[name]
