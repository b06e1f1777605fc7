"""A teacher that needs no weights: OpenCV's DIS optical flow from each driving frame to its
source, as the sampling grid that warps the source onto the driving frame, and the loss that
pulls the dense motion towards it."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fomcodec.nets.blocks import make_coordinate_grid
from fomcodec.nets.optical_flow import dis_flow


def dis_flow_grid(
    source: torch.Tensor, driving: torch.Tensor, preset: str = "medium"
) -> torch.Tensor:
    """Backward flow driving -> source as a centred sampling grid (B, H, W, 2): warping the
    source with ``grid_sample(source, grid, align_corners=False)`` approximates the driving
    frame."""
    height, width = source.shape[2:]
    flow = dis_flow(driving, source, preset).permute(0, 2, 3, 1)
    scale = flow.new_tensor([2.0 / width, 2.0 / height])
    identity = make_coordinate_grid(height, width, flow.dtype, flow.device, centred=True)
    return identity.unsqueeze(0) + flow * scale


def flow_loss(deformation: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance, in grid units (2 / pixels), between a dense motion's grid and the
    teacher's, the teacher averaged down to the motion's resolution."""
    height, width = deformation.shape[1:3]
    if teacher.shape[1:3] != (height, width):
        identity_full = make_coordinate_grid(
            *teacher.shape[1:3], teacher.dtype, teacher.device, centred=True
        )
        displacement = F.adaptive_avg_pool2d(
            (teacher - identity_full).permute(0, 3, 1, 2), (height, width)
        ).permute(0, 2, 3, 1)
        identity = make_coordinate_grid(height, width, teacher.dtype, teacher.device, centred=True)
        teacher = displacement + identity
    return (deformation.float() - teacher).abs().mean()
