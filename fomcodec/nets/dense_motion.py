"""FOMM dense motion network: turns sparse keypoint motions into a dense flow and occlusion map."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fomcodec.nets.blocks import (
    AntiAliasInterpolation2d,
    Hourglass,
    keypoints_to_gaussians,
    make_coordinate_grid,
)
from fomcodec.nets.keypoint_detector import Keypoints


class DenseMotionNetwork(nn.Module):
    """Predicts, from the source image and two keypoint sets, a backward flow driving->source.

    ::

        source --down--> s (B,C,h,w)
        kp_driving, kp_source --> K+1 sparse motions (identity + one affine per keypoint)
        [gaussian differences | s warped by each sparse motion] --hourglass--> mask (softmax)
        deformation = sum_k mask_k * sparse_motion_k          (B,h,w,2)
        occlusion   = sigmoid(conv(hourglass features))       (B,1,h,w)
    """

    def __init__(
        self,
        block_expansion: int,
        num_blocks: int,
        max_features: int,
        num_kp: int,
        num_channels: int,
        estimate_occlusion_map: bool = False,
        scale_factor: float = 1,
        kp_variance: float = 0.01,
        align_corners: bool = False,
        centred_grid: bool = False,
    ) -> None:
        super().__init__()
        self.hourglass = Hourglass(
            block_expansion,
            in_features=(num_kp + 1) * (num_channels + 1),
            max_features=max_features,
            num_blocks=num_blocks,
        )
        self.mask = nn.Conv2d(
            self.hourglass.out_filters, num_kp + 1, kernel_size=(7, 7), padding=(3, 3)
        )
        self.occlusion = (
            nn.Conv2d(self.hourglass.out_filters, 1, kernel_size=(7, 7), padding=(3, 3))
            if estimate_occlusion_map
            else None
        )
        self.num_kp = num_kp
        self.scale_factor = scale_factor
        self.kp_variance = kp_variance
        self.align_corners = align_corners
        self.centred_grid = centred_grid
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, scale_factor)

    def downsample(self, source_image: torch.Tensor) -> torch.Tensor:
        """The source at the resolution this network works at."""
        return self.down(source_image) if self.scale_factor != 1 else source_image

    def heatmap_representation(
        self, height: int, width: int, kp_driving: Keypoints, kp_source: Keypoints
    ) -> torch.Tensor:
        """Difference of keypoint Gaussians plus a zero background map: (B, K+1, 1, h, w)."""
        heatmap = keypoints_to_gaussians(
            kp_driving.value, height, width, self.kp_variance, self.centred_grid
        ) - keypoints_to_gaussians(
            kp_source.value, height, width, self.kp_variance, self.centred_grid
        )
        zeros = heatmap.new_zeros(heatmap.shape[0], 1, height, width)
        return torch.cat([zeros, heatmap], dim=1).unsqueeze(2)

    def sparse_motions(
        self, height: int, width: int, kp_driving: Keypoints, kp_source: Keypoints
    ) -> torch.Tensor:
        """Identity plus one first-order (affine) motion per keypoint: (B, K+1, h, w, 2)."""
        batch = kp_driving.value.shape[0]
        identity = make_coordinate_grid(
            height, width, kp_source.value.dtype, kp_source.value.device, self.centred_grid
        ).view(1, 1, height, width, 2)
        grid = identity - kp_driving.value.view(batch, self.num_kp, 1, 1, 2)
        if kp_driving.jacobian is not None and kp_source.jacobian is not None:
            jacobian = torch.matmul(kp_source.jacobian, torch.inverse(kp_driving.jacobian))
            grid = torch.matmul(
                jacobian.view(batch, self.num_kp, 1, 1, 2, 2), grid.unsqueeze(-1)
            ).squeeze(-1)
        driving_to_source = grid + kp_source.value.expand(batch, -1, -1).reshape(
            batch, self.num_kp, 1, 1, 2
        )
        return torch.cat([identity.expand(batch, 1, height, width, 2), driving_to_source], dim=1)

    def deformed_sources(self, source: torch.Tensor, motions: torch.Tensor) -> torch.Tensor:
        """The source warped by each sparse motion: (B, K+1, C, h, w)."""
        batch, num_motions, height, width, _ = motions.shape
        channels = source.shape[1]
        repeated = source.unsqueeze(1).expand(batch, num_motions, channels, height, width)
        warped = F.grid_sample(
            repeated.reshape(batch * num_motions, channels, height, width),
            motions.reshape(batch * num_motions, height, width, 2),
            align_corners=self.align_corners,
        )
        return warped.view(batch, num_motions, channels, height, width)

    def forward(
        self,
        source_image: torch.Tensor,
        kp_driving: Keypoints,
        kp_source: Keypoints,
        source_small: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Dense motion for each driving frame; ``source_small`` may pass a cached
        :meth:`downsample` of the source, which is then broadcast over the batch."""
        small = self.downsample(source_image) if source_small is None else source_small
        batch = kp_driving.value.shape[0]
        small = small.expand(batch, -1, -1, -1)
        height, width = small.shape[2:]
        # Keypoint geometry stays in fp32 under bf16 autocast (matmul would be downcast).
        with torch.autocast(small.device.type, enabled=False):
            heatmap = self.heatmap_representation(height, width, kp_driving, kp_source)
            motions = self.sparse_motions(height, width, kp_driving, kp_source)
            deformed = self.deformed_sources(small.float(), motions)
        hourglass_input = torch.cat([heatmap, deformed], dim=2)
        prediction = self.hourglass(hourglass_input.view(batch, -1, height, width))
        mask = F.softmax(self.mask(prediction).float(), dim=1)
        deformation = (motions.permute(0, 1, 4, 2, 3) * mask.unsqueeze(2)).sum(dim=1)
        out = {
            "sparse_deformed": deformed,
            "mask": mask,
            "deformation": deformation.permute(0, 2, 3, 1),
        }
        if self.occlusion is not None:
            out["occlusion_map"] = torch.sigmoid(self.occlusion(prediction).float())
        return out
