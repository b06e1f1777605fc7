"""FOMM occlusion-aware generator: warps source features by the dense motion and decodes a frame."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fomcodec.nets.blocks import (
    DownBlock2d,
    ResBlock2d,
    SameBlock2d,
    UpBlock2d,
    resize_deformation,
)
from fomcodec.nets.dense_motion import DenseMotionNetwork
from fomcodec.nets.keypoint_detector import Keypoints

SourceFeatures = torch.Tensor | list[torch.Tensor]


class OcclusionAwareGenerator(nn.Module):
    """Image generator driven by keypoints.

    ::

        source --first/down_blocks--> features (B,C,H/4,W/4)      [once per source: encode_source]
        dense_motion(source, kp_driving, kp_source) --> deformation, occlusion
        features --warp(deformation)--> * occlusion --bottleneck--up_blocks--final--> sigmoid

    With ``skip_connections`` the source features of every scale are warped, masked by the
    occlusion and merged into the up blocks of the same scale (MRAA / TPSMM style); with
    ``pixel_blend`` a full-resolution mask ``m`` passes the warped source image through::

        prediction = m * warp(source) + (1 - m) * generated
    """

    def __init__(
        self,
        num_channels: int,
        num_kp: int,
        block_expansion: int,
        max_features: int,
        num_down_blocks: int,
        num_bottleneck_blocks: int,
        estimate_occlusion_map: bool = False,
        dense_motion_params: dict | None = None,
        estimate_jacobian: bool = False,
        align_corners: bool = False,
        centred_grid: bool = False,
        skip_connections: bool = False,
        pixel_blend: bool = False,
    ) -> None:
        super().__init__()
        if dense_motion_params is not None:
            self.dense_motion_network = DenseMotionNetwork(
                num_kp=num_kp,
                num_channels=num_channels,
                estimate_occlusion_map=estimate_occlusion_map,
                align_corners=align_corners,
                centred_grid=centred_grid,
                **dense_motion_params,
            )
        else:
            self.dense_motion_network = None
        self.first = SameBlock2d(num_channels, block_expansion, kernel_size=(7, 7), padding=(3, 3))
        self.down_blocks = nn.ModuleList(
            DownBlock2d(
                min(max_features, block_expansion * (2**i)),
                min(max_features, block_expansion * (2 ** (i + 1))),
            )
            for i in range(num_down_blocks)
        )
        self.up_blocks = nn.ModuleList(
            UpBlock2d(
                min(max_features, block_expansion * (2 ** (num_down_blocks - i))),
                min(max_features, block_expansion * (2 ** (num_down_blocks - i - 1))),
            )
            for i in range(num_down_blocks)
        )
        self.bottleneck = nn.Sequential()
        bottleneck_features = min(max_features, block_expansion * (2**num_down_blocks))
        for i in range(num_bottleneck_blocks):
            self.bottleneck.add_module(f"r{i}", ResBlock2d(bottleneck_features, 3, 1))
        self.final = nn.Conv2d(block_expansion, num_channels, kernel_size=(7, 7), padding=(3, 3))
        self.skip_merges = (
            nn.ModuleList(
                _identity_merge(
                    min(max_features, block_expansion * (2 ** (num_down_blocks - i - 1)))
                )
                for i in range(num_down_blocks)
            )
            if skip_connections
            else None
        )
        self.blend = None
        if pixel_blend:
            self.blend = nn.Conv2d(block_expansion, 1, kernel_size=(3, 3), padding=(1, 1))
            with torch.no_grad():
                self.blend.weight.zero_()
                self.blend.bias.fill_(-2.0)
        self.estimate_occlusion_map = estimate_occlusion_map
        self.num_channels = num_channels
        self.align_corners = align_corners
        self.centred_grid = centred_grid

    def deform_input(self, inp: torch.Tensor, deformation: torch.Tensor) -> torch.Tensor:
        """Backward-warp ``inp`` by ``deformation`` (resized to ``inp``'s resolution if needed),
        in fp32 whatever the autocast precision: bf16 sampling positions are too coarse."""
        deformation = resize_deformation(
            deformation.float(), inp.shape[2], inp.shape[3], self.centred_grid
        )
        return F.grid_sample(inp.float(), deformation, align_corners=self.align_corners)

    def encode_source(self, source_image: torch.Tensor) -> SourceFeatures:
        """Source features before warping; compute once per source image. A list (one entry
        per scale, finest first) with skip connections, else the coarsest features."""
        scales = [self.first(source_image)]
        for block in self.down_blocks:
            scales.append(block(scales[-1]))
        return scales if self.skip_connections else scales[-1]

    @property
    def skip_connections(self) -> bool:
        return self.skip_merges is not None

    def decode(
        self,
        source_image: torch.Tensor,
        source_features: SourceFeatures,
        kp_driving: Keypoints,
        kp_source: Keypoints,
        source_small: torch.Tensor | None = None,
        with_deformed: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Generate one frame per driving keypoint set from precomputed source features."""
        batch = kp_driving.value.shape[0]
        scales = source_features if isinstance(source_features, list) else [source_features]
        scales = [f.expand(batch, -1, -1, -1) for f in scales]
        output: dict[str, torch.Tensor] = {}
        deformation = None
        if self.dense_motion_network is not None:
            motion = self.dense_motion_network(source_image, kp_driving, kp_source, source_small)
            output["mask"] = motion["mask"]
            output["sparse_deformed"] = motion["sparse_deformed"]
            deformation = motion["deformation"]
            output["deformation"] = deformation
            occlusion_map = motion.get("occlusion_map")
            warped = []
            for features in scales:
                features = self.deform_input(features, deformation)
                if occlusion_map is not None:
                    occlusion = occlusion_map
                    if features.shape[2:] != occlusion.shape[2:]:
                        occlusion = F.interpolate(
                            occlusion, size=features.shape[2:], mode="bilinear"
                        )
                    features = features * occlusion.to(features.dtype)
                warped.append(features)
            scales = warped
            if occlusion_map is not None:
                output["occlusion_map"] = occlusion_map
        out = self.bottleneck(scales[-1])
        for i, block in enumerate(self.up_blocks):
            out = block(out)
            if self.skip_merges is not None:
                out = self.skip_merges[i](torch.cat([out, scales[-2 - i].to(out.dtype)], dim=1))
        generated = torch.sigmoid(self.final(out))
        needs_warped_source = with_deformed or self.blend is not None
        if deformation is not None and needs_warped_source:
            output["deformed"] = self.deform_input(
                source_image.expand(batch, -1, -1, -1), deformation
            )
        if self.blend is not None and deformation is not None:
            blend = torch.sigmoid(self.blend(out).float())
            output["blend_mask"] = blend
            output["generated"] = generated
            generated = blend * output["deformed"] + (1 - blend) * generated.float()
        output["prediction"] = generated
        return output

    def forward(
        self, source_image: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints
    ) -> dict[str, torch.Tensor]:
        return self.decode(
            source_image,
            self.encode_source(source_image),
            kp_driving,
            kp_source,
            with_deformed=True,
        )


def _identity_merge(channels: int) -> nn.Conv2d:
    """A 1x1 convolution from [up-block output | warped skip] to ``channels`` that starts as
    passing the up-block output through unchanged (so weights without skips load as they were)."""
    merge = nn.Conv2d(2 * channels, channels, kernel_size=1)
    with torch.no_grad():
        merge.weight.zero_()
        merge.weight[:, :channels, 0, 0] = torch.eye(channels)
        merge.bias.zero_()
    return merge
