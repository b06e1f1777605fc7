"""Facial frame interpolator combining symmetric and asymmetric motions.

After Kim, Park, Choi and Kim, "Facial Video Frame Interpolation Combining Symmetric and
Asymmetric Motions" (no code or weights of it are public; built from the paper's
description). Given frames I0 and I1 it synthesises the frame at t = 0.5::

    I0, I1 --context extractor--> pyramids C(I0), C(I1): full 8ch, half 16ch, quarter 32ch
    cat(I0, I1) --feature U-Net--> features (half resolution)
    features --asymmetric block--> alpha, beta (0.5->0 and 0.5->1, one offset per tap),
                                   W0, W1 (softmax over the F x F taps), O (sigmoid)
             --> WAMV of I0, I1 (full res) and of every pyramid level   -> I_a0, I_a1
    features --symmetric block--> one vector (alpha_s, beta_s) per pixel (to frame 1: its
                                  negation), W0, W1
             --> WSMV of I0, I1 and of every pyramid level              -> I_s0, I_s1
    GridNet(I_a0, I_a1, I_s0, I_s1, warped pyramids) --> residual
    output = O * I_a0 + (1 - O) * I_a1 + residual

Modes (``forward(..., mode=)``): ``"full"``; ``"asymmetric"`` and ``"symmetric"`` for
pre-training one block alone (output = occlusion blend of that block's two warped frames, the
symmetric block with its own occlusion map O_s, used for pre-training only). Ablations by
config (``variant``): ``"proposed-s"`` (initial estimate O_s * I_s0 + (1 - O_s) * I_s1) and
``"proposed-as"`` (four-way softmax occlusion blend of I_a0, I_a1, I_s0, I_s1).

Speed knobs (all in :class:`InterpolatorConfig`): one shared trunk for all subnetwork heads,
narrower rows and fewer columns in the GridNet, which pyramid levels each block warps, the
full-resolution conv after each head's upsampling, kernel size F, and the approximate
``prewarp`` WSMV.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from fomcodec.errors import ModelError
from fomcodec.nets.config import SectionConfig
from fomcodec.nets.warping import tap_offsets, wamv, wsmv, wsmv_prewarp

MODES = ("full", "asymmetric", "symmetric")
VARIANTS = ("full", "proposed-s", "proposed-as")
SYMMETRIC_WARPS = ("exact", "prewarp")
ACTIVATIONS = ("prelu", "leaky_relu")
INTERPOLATOR_FOLDER = "interpolators"


@dataclass
class InterpolatorConfig(SectionConfig):
    """Architecture of a :class:`FacialFrameInterpolator` (defaults: the paper's size)."""

    SECTION: ClassVar[str] = "interpolator"

    name: str = "ffi-paper"
    kernel_size: int = 5  # F: taps per side of WAMV / WSMV kernels (odd)
    dilation: int = 1
    context_channels: list[int] = field(default_factory=lambda: [8, 16, 32])
    unet_channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256, 512])
    unet_convs: int = 3  # 3x3 convs per U-Net block
    head_channels: int = 64  # hidden width of the subnetworks (or shared trunk)
    head_convs: int = 2  # hidden convs before each head's output conv
    shared_trunk: bool = False  # one trunk for all heads of both blocks
    head_full_res_conv: bool = True  # conv after each head's upsampling (paper)
    gridnet_channels: list[int] = field(default_factory=lambda: [32, 64, 96])
    gridnet_columns: int = 6  # even: half downsampling, half upsampling columns
    asymmetric_levels: list[int] = field(default_factory=lambda: [0, 1, 2])
    symmetric_levels: list[int] = field(default_factory=lambda: [0, 1, 2])
    symmetric_warp: str = "exact"  # "exact" (paper) or "prewarp" (approximation)
    head_kernel: int = 3  # kernel of each head's output conv (1: pointwise)
    activation: str = "prelu"  # context extractor and GridNet: prelu, leaky_relu
    variant: str = "full"  # "full", "proposed-s", "proposed-as"
    image_size: int = 256  # training / benchmark resolution (informational)
    bf16: bool = True  # run convs under bf16 autocast where it is fast
    notes: str = ""

    def __post_init__(self) -> None:
        self.context_channels = [int(c) for c in self.context_channels]
        self.unet_channels = [int(c) for c in self.unet_channels]
        self.gridnet_channels = [int(c) for c in self.gridnet_channels]
        self.asymmetric_levels = sorted(int(level) for level in self.asymmetric_levels)
        self.symmetric_levels = sorted(int(level) for level in self.symmetric_levels)
        problems = []
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            problems.append(f"kernel_size must be odd, got {self.kernel_size}")
        if len(self.context_channels) != 3 or len(self.gridnet_channels) != 3:
            problems.append("context_channels and gridnet_channels need three entries")
        if len(self.unet_channels) < 2:
            problems.append("unet_channels needs at least two levels")
        if self.gridnet_columns < 2 or self.gridnet_columns % 2:
            problems.append("gridnet_columns must be even and >= 2")
        if not set(self.asymmetric_levels + self.symmetric_levels) <= {0, 1, 2}:
            problems.append("warped pyramid levels must be among 0, 1, 2")
        if self.symmetric_warp not in SYMMETRIC_WARPS:
            problems.append(f"symmetric_warp must be one of {SYMMETRIC_WARPS}")
        if self.activation not in ACTIVATIONS:
            problems.append(f"activation must be one of {ACTIVATIONS}")
        if self.head_kernel not in (1, 3):
            problems.append("head_kernel must be 1 or 3")
        if self.variant not in VARIANTS:
            problems.append(f"variant must be one of {VARIANTS}")
        if problems:
            raise ModelError(f"invalid interpolator config '{self.name}': " + "; ".join(problems))

    @property
    def taps(self) -> int:
        return self.kernel_size * self.kernel_size

    @property
    def size_multiple(self) -> int:
        """Input sides are padded to a multiple of this (U-Net and GridNet pooling)."""
        return max(2 ** len(self.unet_channels), 4)


# ----------------------------------------------------------------------------- building blocks


def _conv(cin: int, cout: int, kernel: int = 3, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(
        cin, cout, kernel, stride=stride, dilation=dilation, padding=dilation * (kernel // 2)
    )


def _conv_relu(cin: int, cout: int, convs: int = 1) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [_conv(cin if i == 0 else cout, cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def _act(kind: str, channels: int, inplace: bool = False) -> nn.Module:
    """PReLU (the paper's context and synthesis networks) or leaky ReLU (cheaper on the CPU;
    ``inplace`` only where the input is not needed elsewhere)."""
    if kind == "prelu":
        return nn.PReLU(channels)
    return nn.LeakyReLU(0.1, inplace=inplace)


def _up2(x: torch.Tensor) -> torch.Tensor:
    """Bilinear x2 upsampling (``align_corners=False``). Without autograd, fp32 NCHW tensors
    take a separable version writing strided outputs in place: 2x faster on the CPU than
    ``F.interpolate`` for NCHW (which is fast only for channels_last), same values."""
    if (
        (torch.is_grad_enabled() and x.requires_grad)
        or x.dtype != torch.float32
        or not x.is_contiguous()
        or x.device.type != "cpu"
    ):
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
    b, c, h, w = x.shape
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    rows = torch.empty(b, c, h, 2, w + 2, dtype=x.dtype)
    centre = padded[:, :, 1:-1]
    torch.add(centre, padded[:, :, :-2], alpha=1 / 3, out=rows[:, :, :, 0])
    torch.add(centre, padded[:, :, 2:], alpha=1 / 3, out=rows[:, :, :, 1])
    rows = rows.view(b, c, 2 * h, w + 2)
    out = torch.empty(b, c, 2 * h, w, 2, dtype=x.dtype)
    centre = rows[..., 1:-1]
    torch.add(centre, rows[..., :-2], alpha=1 / 3, out=out[..., 0])
    torch.add(centre, rows[..., 2:], alpha=1 / 3, out=out[..., 1])
    return out.view(b, c, 2 * h, 2 * w).mul_(0.5625)  # 3/4 * (a + b/3) per axis


def _up_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if x.shape[-2:] == like.shape[-2:]:
        return x
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class ContextExtractor(nn.Module):
    """Three 3x3 convs (8, 16, 32 channels), downsampling after the second and the third by a
    stride-2 dilated (d=2) conv: a 3-level pyramid at full, half and quarter resolution."""

    def __init__(self, channels: list[int], act: str = "prelu") -> None:
        super().__init__()
        c0, c1, c2 = channels
        self.conv0 = nn.Sequential(_conv(3, c0), _act(act, c0, True))
        self.conv1 = nn.Sequential(_conv(c0, c1), _act(act, c1, True))
        self.down1 = nn.Sequential(_conv(c1, c1, stride=2, dilation=2), _act(act, c1, True))
        self.conv2 = nn.Sequential(_conv(c1, c2), _act(act, c2, True))
        self.down2 = nn.Sequential(_conv(c2, c2, stride=2, dilation=2), _act(act, c2, True))

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        level0 = self.conv0(image)
        level1 = self.down1(self.conv1(level0))
        level2 = self.down2(self.conv2(level1))
        return [level0, level1, level2]


class FeatureUNet(nn.Module):
    """AdaCoF-style U-Net on cat(I0, I1): blocks of 3x3 convs, 2x2 average pooling after each
    block, bilinear upsampling (+ conv) with additive skip connections, back up to half
    resolution, where it ends with ``channels[1]`` channels (AdaCoF: 32..512 -> 64)."""

    def __init__(self, channels: list[int], convs: int) -> None:
        super().__init__()
        self.encoders = nn.ModuleList(
            _conv_relu(6 if i == 0 else channels[i - 1], c, convs) for i, c in enumerate(channels)
        )
        self.bottom = _conv_relu(channels[-1], channels[-1], convs)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        # level l = len-1 .. 1: upsample to level l (+ conv), add encoder l's output, and
        # (above level 1) a block down to level l-1's width
        for level in range(len(channels) - 1, 0, -1):
            self.ups.append(_conv_relu(channels[level], channels[level]))
            self.decoders.append(
                _conv_relu(channels[level], channels[level - 1], convs)
                if level > 1
                else nn.Identity()
            )
        self.out_channels = channels[1]

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        skips = []
        x = frames
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = F.avg_pool2d(x, 2)
        x = self.bottom(x)
        for up, decoder, level in zip(
            self.ups, self.decoders, range(len(skips) - 1, 0, -1), strict=True
        ):
            x = decoder(up(_up_to(x, skips[level])) + skips[level])
        return x


class PointwiseToNCHW(nn.Conv2d):
    """1x1 conv whose output is NCHW-contiguous whatever the input's memory format: for a
    channels_last input it is one matmul reading the input transposed, so the heads' outputs
    reach the (NCHW) warps without a layout conversion."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_contiguous(memory_format=torch.channels_last) or x.is_contiguous():
            return super().forward(x).contiguous()
        b, c, h, w = x.shape
        rows = x.permute(0, 2, 3, 1).reshape(b, h * w, c)  # a view
        weight = self.weight.view(self.out_channels, c)
        bias = self.bias
        if torch.is_autocast_enabled(x.device.type):
            dtype = torch.get_autocast_dtype(x.device.type)
            rows, weight = rows.to(dtype), weight.to(dtype)
            bias = bias.to(dtype) if bias is not None else None
        out = torch.matmul(weight, rows.transpose(1, 2))  # (B, Cout, HW)
        if bias is not None:
            out = out + bias.view(1, -1, 1)
        return out.view(b, self.out_channels, h, w)


class Subnetwork(nn.Module):
    """AdaCoF's subnetwork: ``convs`` hidden 3x3 convs + ReLU, an output conv, bilinear x2
    upsampling and a conv at full resolution (``full_res_conv``). Without that last conv the
    output stays at half resolution: the network activates it there (softmax, sigmoid) and
    upsamples the result, which is the same upsampling layer, applied 4x cheaper."""

    def __init__(
        self,
        cin: int,
        hidden: int,
        cout: int,
        convs: int,
        full_res_conv: bool,
        middle: int | None = None,
        out_kernel: int = 3,
    ) -> None:
        super().__init__()
        middle = middle or cout
        layers: list[nn.Module] = []
        for i in range(convs):
            layers += [_conv(cin if i == 0 else hidden, hidden), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        body_out = hidden if convs else cin
        if full_res_conv:
            self.out = nn.Sequential(_conv(body_out, middle, out_kernel), nn.ReLU(inplace=True))
            self.final: nn.Module | None = _conv(middle, cout)
        else:
            self.out = (
                PointwiseToNCHW(body_out, cout)
                if out_kernel == 1
                else _conv(body_out, cout, out_kernel)
            )
            self.final = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.out(self.body(x))
        return self.final(_up2(x)) if self.final is not None else x


class MotionHeads(nn.Module):
    """The subnetworks of one motion block: one per output group, or (``shared``) one head
    after a shared trunk, its output split into the groups."""

    def __init__(
        self,
        groups: dict[str, tuple[int, int | None]],
        cin: int,
        hidden: int,
        convs: int,
        full_res_conv: bool,
        shared: bool,
        out_kernel: int = 3,
    ) -> None:
        super().__init__()
        self.groups = {name: channels for name, (channels, _) in groups.items()}
        self.shared = shared
        self.half_res = not full_res_conv
        if shared:
            total = sum(self.groups.values())
            self.head = Subnetwork(
                hidden if convs else cin, hidden, total, 0, full_res_conv, out_kernel=out_kernel
            )
        else:
            self.heads = nn.ModuleDict(
                {
                    name: Subnetwork(
                        cin, hidden, channels, convs, full_res_conv, middle, out_kernel
                    )
                    for name, (channels, middle) in groups.items()
                }
            )

    def forward(self, x: torch.Tensor, skip: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
        """Raw outputs per group (fp32), at half resolution if :attr:`half_res`; ``x``:
        features (separate heads) or trunk output (shared)."""
        if self.shared:
            out = self.head(x).float()
            return dict(zip(self.groups, out.split(list(self.groups.values()), dim=1), strict=True))
        return {name: head(x).float() for name, head in self.heads.items() if name not in skip}


class LateralUnit(nn.Module):
    """GridNet lateral residual unit: x + conv(PReLU(conv(PReLU(x))))."""

    def __init__(self, channels: int, act: str = "prelu") -> None:
        super().__init__()
        self.body = nn.Sequential(
            _act(act, channels),
            _conv(channels, channels),
            _act(act, channels, True),
            _conv(channels, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class DownUnit(nn.Module):
    """GridNet downsampling unit: a stride-2 dilated (d=2) conv and a conv."""

    def __init__(self, cin: int, cout: int, act: str = "prelu") -> None:
        super().__init__()
        self.body = nn.Sequential(
            _act(act, cin),
            _conv(cin, cout, stride=2, dilation=2),
            _act(act, cout, True),
            _conv(cout, cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class UpUnit(nn.Module):
    """GridNet upsampling unit: bilinear x2 and two convs."""

    def __init__(self, cin: int, cout: int, act: str = "prelu") -> None:
        super().__init__()
        self.body = nn.Sequential(
            _act(act, cin), _conv(cin, cout), _act(act, cout, True), _conv(cout, cout)
        )

    def forward(self, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return self.body(_up_to(x, like))


class GridNet(nn.Module):
    """Three-row GridNet (full, half, quarter resolution): the first half of the columns
    downsample between rows, the second half upsample; each row takes its inputs in the first
    column. Outputs a 3-channel residual (last conv zero-initialised)."""

    def __init__(
        self, inputs: list[int], channels: list[int], columns: int, act: str = "prelu"
    ) -> None:
        super().__init__()
        c = channels
        self.heads = nn.ModuleList(
            nn.Sequential(_conv(cin, ch), _act(act, ch, True), _conv(ch, ch)) if cin else None
            for cin, ch in zip(inputs, c, strict=True)
        )
        half = columns // 2
        self.down_columns = nn.ModuleList()
        for col in range(half):
            self.down_columns.append(
                nn.ModuleDict(
                    {
                        "lat0": LateralUnit(c[0], act) if col else nn.Identity(),
                        "lat1": LateralUnit(c[1], act) if col else nn.Identity(),
                        "lat2": LateralUnit(c[2], act) if col else nn.Identity(),
                        "down01": DownUnit(c[0], c[1], act),
                        "down12": DownUnit(c[1], c[2], act),
                    }
                )
            )
        self.up_columns = nn.ModuleList(
            nn.ModuleDict(
                {
                    "lat0": LateralUnit(c[0], act),
                    "lat1": LateralUnit(c[1], act),
                    "lat2": LateralUnit(c[2], act),
                    "up21": UpUnit(c[2], c[1], act),
                    "up10": UpUnit(c[1], c[0], act),
                }
            )
            for _ in range(half)
        )
        self.tail = nn.Sequential(_act(act, c[0], True), _conv(c[0], 3))
        nn.init.zeros_(self.tail[1].weight)
        nn.init.zeros_(self.tail[1].bias)

    def forward(
        self, x0: torch.Tensor, x1: torch.Tensor | None, x2: torch.Tensor | None
    ) -> torch.Tensor:
        rows: list[torch.Tensor | None] = [
            head(x) if head is not None and x is not None else None
            for head, x in zip(self.heads, (x0, x1, x2), strict=True)
        ]
        r0 = rows[0]
        assert r0 is not None
        r1, r2 = rows[1], rows[2]
        for column in self.down_columns:
            r0 = column["lat0"](r0)
            d1 = column["down01"](r0)
            r1 = d1 if r1 is None else column["lat1"](r1) + d1
            d2 = column["down12"](r1)
            r2 = d2 if r2 is None else column["lat2"](r2) + d2
        for column in self.up_columns:
            r2 = column["lat2"](r2)
            r1 = column["lat1"](r1) + column["up21"](r2, r1)
            r0 = column["lat0"](r0) + column["up10"](r1, r0)
        return self.tail(r0)


# ----------------------------------------------------------------------------------- network


def _motion_pyramid(
    weights: torch.Tensor,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    levels: list[int],
    half: tuple[torch.Tensor, ...] | None = None,
) -> dict[int, tuple[torch.Tensor, ...]]:
    """Weights and offsets at the coarser levels: 2x2 average pooling per level (weights
    stay normalised), offsets halved per level (pixels of that level). ``half``: the heads'
    own half-resolution (weights, alpha, beta), used as level 1 where given."""
    out: dict[int, tuple[torch.Tensor, ...]] = {}
    current = (weights, alpha, beta)
    for level in range(1, max(levels, default=0) + 1):
        if level == 1 and half is not None:
            w, a, b = half
        else:
            w, a, b = (F.avg_pool2d(t, 2) for t in current)
        current = (w, a / 2, b / 2)
        if level in levels:
            out[level] = current
    return out


def _pair(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Two (B, C, H, W) tensors as one (2B, C, H, W) batch in (b, t) order: b0t0, b0t1, b1t0...
    A view, without copying, where both are slices of one tensor at a fixed distance."""
    if (
        first.dim() == 4
        and first.shape[0] == 1
        and first.shape == second.shape
        and first.stride() == second.stride()
        and first.untyped_storage().data_ptr() == second.untyped_storage().data_ptr()
        and second.storage_offset() > first.storage_offset()
    ):
        return first.as_strided(
            (2, *first.shape[1:]),
            (second.storage_offset() - first.storage_offset(), *first.stride()[1:]),
        )
    return torch.stack((first, second), dim=1).flatten(0, 1)


def _split_pair(stacked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`_pair` (views)."""
    pairs = stacked.unflatten(0, (-1, 2))
    return pairs[:, 0], pairs[:, 1]


def _smoothness_field(
    weights: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    tap_rows: torch.Tensor,
    tap_cols: torch.Tensor,
) -> torch.Tensor:
    """Weighted motion field (B, 2, H, W): sum_n W_n * (tap offset + motion offset)."""
    mean_row = (weights * (rows + tap_rows)).sum(1, keepdim=True)
    mean_col = (weights * (cols + tap_cols)).sum(1, keepdim=True)
    return torch.cat((mean_row, mean_col), dim=1)


class FacialFrameInterpolator(nn.Module):
    """Synthesises the middle frame of (I0, I1); see the module docstring.

    ``forward(frame0, frame1, mode="full")`` takes (B, 3, H, W) frames in [0, 1] (any size:
    padded to :attr:`InterpolatorConfig.size_multiple` internally) and returns a dict:

    * ``frame``: the interpolated frame (B, 3, H, W), not clamped;
    * ``base``: the occlusion blend before the residual, ``occlusion``: its blend map;
    * ``asym0``, ``asym1``, ``sym0``, ``sym1``: the warped candidates computed in this mode;
    * ``motion``: the weighted motion fields (B, 2, H, W) in pixels (rows, columns) of each
      warp, for the smoothness loss (in training mode, or with ``return_motion=True``);
    * ``asymmetric_motion`` / ``symmetric_motion``: the blocks' outputs (offsets, weights,
      occlusion) at full resolution (and ``half_*`` at half resolution for the speed config's
      heads, where no padding was needed).
    """

    def __init__(self, config: InterpolatorConfig) -> None:
        super().__init__()
        self.config = config
        cfg = config
        taps = cfg.taps
        self.context = ContextExtractor(cfg.context_channels, cfg.activation)
        self.features = FeatureUNet(cfg.unet_channels, cfg.unet_convs)
        feat = self.features.out_channels
        hidden = cfg.head_channels
        self.trunk = (
            _conv_relu(feat, hidden, cfg.head_convs)
            if cfg.shared_trunk and cfg.head_convs
            else None
        )
        occlusion_channels = 4 if cfg.variant == "proposed-as" else 1
        # group order: frame 0's then frame 1's outputs, so a shared head's output splits into
        # pairs that are views (see _pair)
        asym_groups: dict[str, tuple[int, int | None]] = {
            "alpha0": (taps, None),
            "beta0": (taps, None),
            "weight0": (taps, None),
            "alpha1": (taps, None),
            "beta1": (taps, None),
            "weight1": (taps, None),
            "occlusion": (occlusion_channels, hidden),
        }
        sym_groups: dict[str, tuple[int, int | None]] = {
            "alpha": (1, None),
            "beta": (1, None),
            "weight0": (taps, None),
            "weight1": (taps, None),
            "occlusion": (1, hidden),
        }
        self.asymmetric = MotionHeads(
            asym_groups,
            feat,
            hidden,
            cfg.head_convs,
            cfg.head_full_res_conv,
            cfg.shared_trunk,
            cfg.head_kernel,
        )
        self.symmetric = MotionHeads(
            sym_groups,
            feat,
            hidden,
            cfg.head_convs,
            cfg.head_full_res_conv,
            cfg.shared_trunk,
            cfg.head_kernel,
        )
        level_channels = cfg.context_channels
        inputs = [12, 0, 0]
        for levels in (cfg.asymmetric_levels, cfg.symmetric_levels):
            for level in levels:
                inputs[level] += 2 * level_channels[level]
        self.synthesis = GridNet(inputs, cfg.gridnet_channels, cfg.gridnet_columns, cfg.activation)
        rows, cols = tap_offsets(cfg.kernel_size, cfg.dilation)
        self.register_buffer(
            "tap_rows", torch.tensor(rows, dtype=torch.float32).view(1, -1, 1, 1), persistent=False
        )
        self.register_buffer(
            "tap_cols", torch.tensor(cols, dtype=torch.float32).view(1, -1, 1, 1), persistent=False
        )

    # --------------------------------------------------------------------------- motion blocks

    def _activate(
        self, heads: MotionHeads, raw: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Softmax over the taps for weights, sigmoid (or softmax over 4 candidates) for the
        occlusion; at half resolution, also upsampled in one call (the half-resolution values
        are kept as ``half_*`` for the pyramid levels)."""
        motion = {}
        for name, value in raw.items():
            if name.startswith("weight") or (name == "occlusion" and value.shape[1] > 1):
                value = torch.softmax(value, dim=1)
            elif name == "occlusion":
                value = torch.sigmoid(value)
            motion[name] = value
        if not heads.half_res:
            return motion
        names = list(motion)
        sizes = [motion[n].shape[1] for n in names]
        full = _up2(torch.cat([motion[n] for n in names], dim=1).contiguous())
        result = dict(zip(names, full.split(sizes, dim=1), strict=True))
        result.update({f"half_{n}": v for n, v in motion.items() if n != "occlusion"})
        return result

    def _motion(
        self, heads: MotionHeads, head_input: torch.Tensor, occlusion: bool
    ) -> dict[str, torch.Tensor]:
        raw = heads(head_input, skip=() if occlusion else ("occlusion",))
        if not occlusion:
            raw.pop("occlusion", None)
        return self._activate(heads, raw)

    def _warp(
        self,
        frames: torch.Tensor,
        contexts: list[torch.Tensor] | None,
        motion: dict[str, torch.Tensor],
        levels: list[int],
        symmetric: bool,
    ) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """Warp the paired frames (2B, (b, t) order) at full resolution, and the context
        levels in ``levels``, with one block's motion; returns the warped frames and the
        warped contexts per level (None where not warped), both paired."""
        cfg = self.config

        def params(prefix: str) -> tuple[torch.Tensor, ...]:
            weights = _pair(motion[f"{prefix}weight0"], motion[f"{prefix}weight1"])
            if symmetric:  # linear trajectory: the motion to frame 1 is the negated one to 0
                a, b = motion[f"{prefix}alpha"], motion[f"{prefix}beta"]
                return weights, _pair(a, -a), _pair(b, -b)
            return (
                weights,
                _pair(motion[f"{prefix}alpha0"], motion[f"{prefix}alpha1"]),
                _pair(motion[f"{prefix}beta0"], motion[f"{prefix}beta1"]),
            )

        def warp(
            image: torch.Tensor, w: torch.Tensor, a: torch.Tensor, b: torch.Tensor
        ) -> torch.Tensor:
            if not symmetric:
                return wamv(image, w, a, b, cfg.kernel_size, cfg.dilation)
            if cfg.symmetric_warp == "prewarp":
                return wsmv_prewarp(image, w, a, b, cfg.kernel_size, cfg.dilation)
            return wsmv(image, w, a, b, cfg.kernel_size, cfg.dilation)

        weights, alpha, beta = params("")
        warped_contexts: list[torch.Tensor | None] = [None, None, None]
        image = frames
        if contexts is not None and 0 in levels:
            image = torch.cat((frames, contexts[0].float()), dim=1)
        out = warp(image, weights, alpha, beta)
        if image is not frames:
            warped_contexts[0] = out[:, 3:]
            out = out[:, :3]
        if contexts is not None and any(level > 0 for level in levels):
            half = params("half_") if "half_weight0" in motion else None
            pyramid = _motion_pyramid(weights, alpha, beta, levels, half)
            for level, (w, a, b) in pyramid.items():
                warped_contexts[level] = warp(contexts[level].float().contiguous(), w, a, b)
        return out, warped_contexts

    # --------------------------------------------------------------------------------- forward

    def forward(
        self,
        frame0: torch.Tensor,
        frame1: torch.Tensor,
        mode: str = "full",
        return_motion: bool | None = None,
    ) -> dict[str, Any]:
        """See the class docstring; ``return_motion`` (default: in training mode) computes the
        weighted motion fields of the smoothness loss."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        cfg = self.config
        batch, _, height, width = frame0.shape
        multiple = cfg.size_multiple
        pad_h, pad_w = (-height) % multiple, (-width) % multiple
        frames = _pair(frame0.float(), frame1.float()).contiguous()  # (2B, 3, H, W)
        if pad_h or pad_w:
            frames = F.pad(frames, (0, pad_w, 0, pad_h), mode="replicate")
        full = mode == "full"
        with_motion = self.training if return_motion is None else return_motion
        centred = frames - 0.5
        features = self.features(centred.view(batch, 6, *centred.shape[-2:]))
        head_input = self.trunk(features) if self.trunk is not None else features
        warps_context = bool(cfg.asymmetric_levels or cfg.symmetric_levels)
        contexts = self.context(centred) if full and warps_context else None

        result: dict[str, Any] = {"motion": []}
        candidates: list[torch.Tensor] = []
        rows: list[list[torch.Tensor]] = [[], [], []]
        for block, used, levels, symmetric in (
            ("asym", mode in ("full", "asymmetric"), cfg.asymmetric_levels, False),
            ("sym", mode in ("full", "symmetric"), cfg.symmetric_levels, True),
        ):
            if not used:
                continue
            if symmetric:
                heads = self.symmetric
                occlusion = mode == "symmetric" or cfg.variant == "proposed-s"
            else:
                heads = self.asymmetric
                occlusion = not (full and cfg.variant == "proposed-s")
            motion = self._motion(heads, head_input, occlusion)
            warped, warped_ctx = self._warp(
                frames, contexts, motion, levels if full else [], symmetric
            )
            result[f"{block}0"], result[f"{block}1"] = _split_pair(warped)
            candidates += [result[f"{block}0"], result[f"{block}1"]]
            for level, ctx in enumerate(warped_ctx):
                if ctx is not None:
                    rows[level] += list(_split_pair(ctx))
            for t in (0, 1) if with_motion else ():
                sign = -1.0 if symmetric and t else 1.0
                a = sign * motion["alpha"] if symmetric else motion[f"alpha{t}"]
                b = sign * motion["beta"] if symmetric else motion[f"beta{t}"]
                result["motion"].append(
                    _smoothness_field(motion[f"weight{t}"], a, b, self.tap_rows, self.tap_cols)
                )
            result["symmetric_motion" if symmetric else "asymmetric_motion"] = motion

        if mode == "asymmetric" or (full and cfg.variant == "full"):
            occ = result["asymmetric_motion"]["occlusion"]
            if occ.shape[1] > 1:  # proposed-as pre-training: softmax over its first two logits
                occ = occ[:, :1] / (occ[:, :1] + occ[:, 1:2])
            base = occ * result["asym0"] + (1 - occ) * result["asym1"]
        elif mode == "symmetric" or cfg.variant == "proposed-s":
            occ = result["symmetric_motion"]["occlusion"]
            base = occ * result["sym0"] + (1 - occ) * result["sym1"]
        else:  # proposed-as: four-way softmax blend
            occ = result["asymmetric_motion"]["occlusion"]
            base = sum(occ[:, i : i + 1] * c for i, c in enumerate(candidates))
        result["occlusion"] = occ
        result["base"] = base
        if full:
            x0 = torch.cat(candidates + rows[0], dim=1)
            x1 = torch.cat(rows[1], dim=1) if rows[1] else None
            x2 = torch.cat(rows[2], dim=1) if rows[2] else None
            residual = self.synthesis(x0, x1, x2).float()
            result["residual"] = residual
            result["frame"] = base + residual
        else:
            result["frame"] = base
        if pad_h or pad_w:
            for key in ("frame", "base", "occlusion", "residual", "asym0", "asym1", "sym0", "sym1"):
                if key in result:
                    result[key] = result[key][..., :height, :width]
            result["motion"] = [m[..., :height, :width] for m in result["motion"]]
            for key in ("asymmetric_motion", "symmetric_motion"):
                if key in result:
                    result[key] = {
                        k: v[..., :height, :width]
                        for k, v in result[key].items()
                        if not k.startswith("half_")
                    }
        return result

    @torch.no_grad()
    def interpolate(self, frame0: torch.Tensor, frame1: torch.Tensor) -> torch.Tensor:
        """The middle frame, clamped to [0, 1] (full network)."""
        return self(frame0, frame1)["frame"].clamp(0, 1)
