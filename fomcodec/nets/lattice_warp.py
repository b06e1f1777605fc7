"""A motion model with no trained weights: the source image warped by a coarse lattice.

::

    encoder:  frame, source --DIS flow (frame -> source)--> (H, W, 2) pixel displacements
                --median over each of the L x L lattice cells--> (L*L, 2), normalised to
                [-1, 1] units (the stream's "keypoints", no Jacobians)
              optionally fitted further: Adam on |warp(source) - frame| (the encoder presets)
    decoder:  (L*L, 2) --bicubic upsampling (cell centres)--> dense displacement field
                --grid_sample(source)--> frame

Talking heads move smoothly: a 4 x 4 lattice of displacements (32 numbers per frame, fewer
than FOMM's 10 keypoints with Jacobians, 60) warps the source to within a few dB of the full
DIS flow, far closer than a keypoint model trained on a CPU. Everything here is classical
(OpenCV's DIS, bicubic interpolation, bilinear sampling); the model's identity for a stream is
the hash of its config.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
import yaml
from torch import nn

from fomcodec.errors import ModelError
from fomcodec.nets.config import SectionConfig
from fomcodec.nets.keypoint_detector import Keypoints
from fomcodec.nets.optical_flow import DIS_PRESETS, dis_flow

UPSAMPLING_MODES = ("bicubic", "bilinear")


@dataclass
class LatticeWarpConfig(SectionConfig):
    """A :class:`LatticeWarp` model: lattice size, interpolation and the encoder's flow."""

    SECTION: ClassVar[str] = "lattice_warp"

    name: str = "fomc-lattice"
    image_size: int = 256
    lattice_size: int = 4  # L: L x L displacement vectors per frame
    upsampling: str = "bicubic"  # how the decoder spreads the lattice over the frame
    flow_preset: str = "ultrafast"  # DIS preset of the encoder's estimate
    value_scale: int = 80  # default quantisation: steps of 1 / value_scale of the half frame
    notes: str = ""

    def __post_init__(self) -> None:
        problems = []
        if self.flow_preset not in DIS_PRESETS:
            problems.append(f"flow_preset must be one of {sorted(DIS_PRESETS)}")
        if self.upsampling not in UPSAMPLING_MODES:
            problems.append(f"upsampling must be one of {UPSAMPLING_MODES}")
        if not 1 <= int(self.lattice_size) <= 64:
            problems.append("lattice_size must be in 1..64")
        if int(self.image_size) < 16 or int(self.image_size) % 16:
            problems.append("image_size must be a positive multiple of 16")
        if not 1 <= int(self.value_scale) <= 32767:
            problems.append("value_scale must be in 1..32767")
        if problems:
            raise ModelError(f"invalid {self.SECTION} config: {'; '.join(problems)}")

    @property
    def num_kp(self) -> int:
        """Motion entries per frame, as the stream header counts them."""
        return self.lattice_size**2

    @property
    def estimate_jacobian(self) -> bool:
        return False


class LatticeWarp(nn.Module):
    """Renders frames as the source warped by bicubically upsampled lattice displacements.

    Motion is a :class:`Keypoints` of values (B, L*L, 2): for each lattice cell, row-major, the
    (x, y) offset, in grid_sample's normalised units, of where its pixels are found in the
    source. Zero motion reproduces the source exactly.
    """

    def __init__(self, config: LatticeWarpConfig) -> None:
        super().__init__()
        self.config = config
        size = config.image_size
        ticks = (torch.arange(size, dtype=torch.float32) * 2 + 1) / size - 1
        rows, cols = torch.meshgrid(ticks, ticks, indexing="ij")
        self.register_buffer("identity", torch.stack([cols, rows], dim=-1)[None], persistent=False)
        self.model_name = config.name
        self.weights_hash = config_hash(config)

    def displacement_field(self, motion: Keypoints) -> torch.Tensor:
        """(B, H, W, 2) normalised displacements spread from the lattice."""
        lattice = self.config.lattice_size
        values = motion.value.float()
        grid = values.view(-1, lattice, lattice, 2).permute(0, 3, 1, 2)
        size = self.config.image_size
        mode = self.config.upsampling
        field = F.interpolate(grid, size=(size, size), mode=mode, align_corners=False)
        return field.permute(0, 2, 3, 1)

    def warp(self, source: torch.Tensor, motion: Keypoints) -> torch.Tensor:
        """Frames (B, 3, H, W) for B motion entries from one source image (1, 3, H, W) in
        [0, 1] (differentiable in the motion; values outside [0, 1] are not clamped)."""
        field = self.displacement_field(motion)
        images = source.float().expand(len(field), -1, -1, -1)
        return F.grid_sample(
            images,
            self.identity + field,
            mode="bilinear",
            padding_mode="border",
            align_corners=False,
        )

    @torch.no_grad()
    def estimate(self, frames: torch.Tensor, source: torch.Tensor) -> Keypoints:
        """The lattice motion that warps ``source`` (1, 3, H, W) towards each of ``frames``
        (B, 3, H, W), both in [0, 1]: DIS flow from the frame to the source, its median over
        each lattice cell (robust to the flow DIS invents in flat regions: 0.2-0.5 dB better
        than the mean, models/fomc-lattice.md)."""
        flow = dis_flow(frames, source.expand(len(frames), -1, -1, -1), self.config.flow_preset)
        lattice = self.config.lattice_size
        size = self.config.image_size
        bounds = [(i * size // lattice, -(-(i + 1) * size // lattice)) for i in range(lattice)]
        cells = torch.stack(
            [
                flow[:, :, top:bottom, left:right].flatten(2).median(dim=2).values
                for top, bottom in bounds
                for left, right in bounds
            ],
            dim=1,
        )
        return Keypoints(cells * (2 / size))


def config_hash(config: LatticeWarpConfig) -> bytes:
    """8 bytes identifying how a stream is decoded: the name, the notes and the encoder's own
    fields (flow preset, value scale) do not count."""
    fields = dataclasses.asdict(config)
    for ignored in ("name", "notes", "flow_preset", "value_scale"):
        fields.pop(ignored)
    text = yaml.safe_dump({LatticeWarpConfig.SECTION: fields}, sort_keys=True)
    return hashlib.sha256(text.encode()).digest()[:8]
