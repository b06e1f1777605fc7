"""FOMM occlusion-aware generator: warps source features by the dense motion and decodes a frame."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fomcodec.nets.blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d
from fomcodec.nets.dense_motion import DenseMotionNetwork
from fomcodec.nets.keypoint_detector import Keypoints


class OcclusionAwareGenerator(nn.Module):
    """Image generator driven by keypoints.

    ::

        source --first/down_blocks--> features (B,C,H/4,W/4)      [once per source: encode_source]
        dense_motion(source, kp_driving, kp_source) --> deformation, occlusion
        features --warp(deformation)--> * occlusion --bottleneck--up_blocks--final--> sigmoid
    """

    def __init__(self, num_channels: int, num_kp: int, block_expansion: int, max_features: int,
                 num_down_blocks: int, num_bottleneck_blocks: int,
                 estimate_occlusion_map: bool = False, dense_motion_params: dict | None = None,
                 estimate_jacobian: bool = False, align_corners: bool = False) -> None:
        super().__init__()
        if dense_motion_params is not None:
            self.dense_motion_network = DenseMotionNetwork(
                num_kp=num_kp, num_channels=num_channels,
                estimate_occlusion_map=estimate_occlusion_map, align_corners=align_corners,
                **dense_motion_params)
        else:
            self.dense_motion_network = None
        self.first = SameBlock2d(num_channels, block_expansion, kernel_size=(7, 7), padding=(3, 3))
        self.down_blocks = nn.ModuleList(
            DownBlock2d(min(max_features, block_expansion * (2**i)),
                        min(max_features, block_expansion * (2 ** (i + 1))))
            for i in range(num_down_blocks))
        self.up_blocks = nn.ModuleList(
            UpBlock2d(min(max_features, block_expansion * (2 ** (num_down_blocks - i))),
                      min(max_features, block_expansion * (2 ** (num_down_blocks - i - 1))))
            for i in range(num_down_blocks))
        self.bottleneck = nn.Sequential()
        bottleneck_features = min(max_features, block_expansion * (2**num_down_blocks))
        for i in range(num_bottleneck_blocks):
            self.bottleneck.add_module(f"r{i}", ResBlock2d(bottleneck_features, 3, 1))
        self.final = nn.Conv2d(block_expansion, num_channels, kernel_size=(7, 7), padding=(3, 3))
        self.estimate_occlusion_map = estimate_occlusion_map
        self.num_channels = num_channels
        self.align_corners = align_corners

    def deform_input(self, inp: torch.Tensor, deformation: torch.Tensor) -> torch.Tensor:
        """Backward-warp ``inp`` by ``deformation`` (resized to ``inp``'s resolution if needed),
        in fp32 whatever the autocast precision: bf16 sampling positions are too coarse."""
        _, h_old, w_old, _ = deformation.shape
        _, _, h, w = inp.shape
        if h_old != h or w_old != w:
            deformation = F.interpolate(deformation.permute(0, 3, 1, 2), size=(h, w),
                                        mode="bilinear").permute(0, 2, 3, 1)
        return F.grid_sample(inp.float(), deformation.float(), align_corners=self.align_corners)

    def encode_source(self, source_image: torch.Tensor) -> torch.Tensor:
        """Source features before warping; compute once per source image."""
        out = self.first(source_image)
        for block in self.down_blocks:
            out = block(out)
        return out

    def decode(self, source_image: torch.Tensor, source_features: torch.Tensor,
               kp_driving: Keypoints, kp_source: Keypoints,
               source_small: torch.Tensor | None = None,
               with_deformed: bool = False) -> dict[str, torch.Tensor]:
        """Generate one frame per driving keypoint set from precomputed source features."""
        batch = kp_driving.value.shape[0]
        out = source_features.expand(batch, -1, -1, -1)
        output: dict[str, torch.Tensor] = {}
        if self.dense_motion_network is not None:
            motion = self.dense_motion_network(source_image, kp_driving, kp_source, source_small)
            output["mask"] = motion["mask"]
            output["sparse_deformed"] = motion["sparse_deformed"]
            deformation = motion["deformation"]
            output["deformation"] = deformation
            out = self.deform_input(out, deformation)
            occlusion_map = motion.get("occlusion_map")
            if occlusion_map is not None:
                output["occlusion_map"] = occlusion_map
                if out.shape[2:] != occlusion_map.shape[2:]:
                    occlusion_map = F.interpolate(occlusion_map, size=out.shape[2:],
                                                  mode="bilinear")
                out = out * occlusion_map.to(out.dtype)
            if with_deformed:
                output["deformed"] = self.deform_input(
                    source_image.expand(batch, -1, -1, -1), deformation)
        out = self.bottleneck(out)
        for block in self.up_blocks:
            out = block(out)
        output["prediction"] = torch.sigmoid(self.final(out))
        return output

    def forward(self, source_image: torch.Tensor, kp_driving: Keypoints,
                kp_source: Keypoints) -> dict[str, torch.Tensor]:
        return self.decode(source_image, self.encode_source(source_image), kp_driving, kp_source,
                           with_deformed=True)
