"""Random affine + thin-plate-spline warps for FOMM's equivariance losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fomcodec.nets.blocks import make_coordinate_grid


class RandomTPS:
    """A random affine transform plus a thin-plate-spline perturbation per batch item.

    ``warp_coordinates`` maps (B, N, 2) points in [-1, 1]; ``transform_frame`` resamples a
    frame with it (backward warp, reflection padding) and ``jacobian`` differentiates it.
    """

    def __init__(
        self,
        batch: int,
        sigma_affine: float = 0.05,
        sigma_tps: float = 0.005,
        points_tps: int = 5,
        generator: torch.Generator | None = None,
    ) -> None:
        noise = torch.randn(batch, 2, 3, generator=generator) * sigma_affine
        self.theta = noise + torch.eye(2, 3).view(1, 2, 3)
        self.batch = batch
        self.control_points = make_coordinate_grid(points_tps, points_tps).view(1, -1, 2)
        self.control_params = torch.randn(batch, 1, points_tps**2, generator=generator) * sigma_tps

    def warp_coordinates(self, coordinates: torch.Tensor) -> torch.Tensor:
        theta = self.theta.to(coordinates).unsqueeze(1)
        out = (torch.matmul(theta[..., :2], coordinates.unsqueeze(-1)) + theta[..., 2:]).squeeze(-1)
        distances = (
            (
                coordinates.view(coordinates.shape[0], -1, 1, 2)
                - self.control_points.to(coordinates).view(1, 1, -1, 2)
            )
            .abs()
            .sum(-1)
        )
        radial = distances**2 * torch.log(distances + 1e-6) * self.control_params.to(coordinates)
        return out + radial.sum(dim=2).view(self.batch, coordinates.shape[1], 1)

    def transform_frame(self, frame: torch.Tensor) -> torch.Tensor:
        height, width = frame.shape[2:]
        grid = make_coordinate_grid(height, width, frame.dtype, frame.device).view(1, -1, 2)
        grid = self.warp_coordinates(grid.expand(self.batch, -1, -1))
        return F.grid_sample(
            frame,
            grid.view(self.batch, height, width, 2),
            padding_mode="reflection",
            align_corners=False,
        )

    def jacobian(self, coordinates: torch.Tensor) -> torch.Tensor:
        """d warp / d coordinates at each point: (B, N, 2, 2)."""
        with torch.enable_grad():
            coords = coordinates if coordinates.requires_grad else coordinates.requires_grad_(True)
            warped = self.warp_coordinates(coords)
            grad_x = torch.autograd.grad(warped[..., 0].sum(), coords, create_graph=True)[0]
            grad_y = torch.autograd.grad(warped[..., 1].sum(), coords, create_graph=True)[0]
        return torch.stack([grad_x, grad_y], dim=-2)
