"""Classical dense optical flow (OpenCV's DIS): motion that needs no trained weights.

Used by the flow interpolator (its motion prior, at decoding time) and by FOMM training (a
teacher for the dense motion). Flows are (B, 2, H, W) float32 pixel displacements, (x, y)
order, OpenCV's convention: ``flow(p)`` says where pixel ``p`` of the first frame is found
in the second one, so warping the *second* frame backwards by it approximates the first.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def grey_uint8(frames: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) floats in [0, 1] -> (B, H, W) uint8 luma (BT.601 weights)."""
    weights = frames.new_tensor([0.299, 0.587, 0.114], dtype=torch.float32).view(1, 3, 1, 1)
    luma = (frames.detach().float() * weights).sum(dim=1).clamp(0, 1) * 255
    return luma.round().to(torch.uint8).cpu().numpy()


def dis_flow(first: torch.Tensor, second: torch.Tensor, preset: str = "medium") -> torch.Tensor:
    """DIS flow from each frame of ``first`` to the same frame of ``second`` (both (B, 3, H, W)
    in [0, 1]): a (B, 2, H, W) float32 tensor of pixel displacements (x, y) on their device."""
    if preset not in DIS_PRESETS:
        raise ValueError(f"DIS preset must be one of {sorted(DIS_PRESETS)}, got {preset!r}")
    dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
    flows = [
        dis.calc(a, b, None) for a, b in zip(grey_uint8(first), grey_uint8(second), strict=True)
    ]
    return torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).contiguous().to(first.device)
