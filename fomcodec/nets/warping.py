"""Kernel-based warping of the facial frame interpolator: WAMV (asymmetric) and WSMV (symmetric).

Both operators gather, for every output pixel, an F x F set of bilinear samples and blend them
with per-pixel weights, in plain PyTorch (``grid_sample``), so they run on CPU and CUDA alike
and are differentiable in the image, the weights and the motion.

Conventions
-----------
* Layouts: ``image`` is (B, C, H, W); per-tap tensors put the taps first, (B, F*F, H, W), in
  row-major tap order: tap ``n = (k + f) * F + (l + f)`` for the row offset ``k`` and column
  offset ``l`` in ``-f..f`` (``f = F // 2``, F odd). Per-pixel motion is (B, 1, H, W).
* ``alpha`` is the vertical (row, ``i``) component and ``beta`` the horizontal (column, ``j``)
  one, as in the paper's I(i + k + alpha, j + l + beta). Both are in pixels of the image being
  warped (halve them for a half-resolution level).
* Pixel centres are at integer coordinates 0..H-1 / 0..W-1 (``align_corners=True`` style:
  row 0 maps to -1 and row H-1 to +1 in ``grid_sample``'s normalised coordinates). Samples
  outside the image take the nearest edge value (``padding_mode="border"``), which equals
  AdaCoF's replication padding.
* Warping runs in fp32 whatever the autocast precision (bf16 sampling positions are coarser
  than a pixel at 256), and returns fp32.

Speed (CPU)
-----------
The taps are stacked in ``grid_sample``'s output-height dimension, so one call samples several
taps of the whole image without copying the image; the sampling grid is written in place (10x
faster than ``torch.stack``) and the weighted sum accumulated with ``addcmul_``. On CUDA all
taps go in one call; on the CPU in chunks of at most :data:`CPU_CHUNK_SAMPLES` sampling
positions, because one call over all taps leaves the cache (``taps_per_call`` overrides).
``grid_sample`` itself is the cost: ~2-3 ns per sample and channel on one Zen 4 core.

Measured (2-core AMD EPYC Zen 4, torch 2.13 CPU, while a FOMM training job kept ~1.4 cores
busy), WAMV of a 1x32x256x256 input, F = 5, fp32: 1 thread 165-215 ms chunked, 235-250 ms as
one call; forward + backward ~405 ms. With 2 threads beside the training job every variant got
slower (one call 450 ms, chunked 770 ms: the many small parallel regions suffer most from a
busy machine), so 2-thread numbers from that machine are not meaningful.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: On the CPU, taps are sampled in chunks of at most this many sampling positions (batch x
#: taps x pixels): faster than one call over all taps, whose grid and output leave the cache.
CPU_CHUNK_SAMPLES = 2**16


def tap_offsets(kernel_size: int, dilation: int = 1) -> tuple[list[int], list[int]]:
    """Row and column offsets (``dilation * k``, ``dilation * l``) of the taps, in tap order."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
    f = kernel_size // 2
    rows = [dilation * k for k in range(-f, f + 1) for _ in range(-f, f + 1)]
    cols = [dilation * lo for _ in range(-f, f + 1) for lo in range(-f, f + 1)]
    return rows, cols


_GRID_TERMS: dict[tuple, tuple[torch.Tensor, torch.Tensor, float, float]] = {}


def _tap_grid_terms(
    height: int, width: int, kernel_size: int, dilation: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, float, float]:
    """Normalised base coordinates of every tap, (1, F*F, H, 1) rows and (1, F*F, 1, W)
    columns, and the pixel-to-normalised scales (cached per size and device)."""
    key = (height, width, kernel_size, dilation, str(device))
    if key in _GRID_TERMS:
        return _GRID_TERMS[key]
    rows, cols = tap_offsets(kernel_size, dilation)
    sy = 2.0 / max(height - 1, 1)
    sx = 2.0 / max(width - 1, 1)
    with torch.inference_mode(False), torch.no_grad():  # usable in and out of inference mode
        dy = torch.tensor(rows, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        dx = torch.tensor(cols, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        i = torch.arange(height, dtype=torch.float32, device=device).view(1, 1, height, 1)
        j = torch.arange(width, dtype=torch.float32, device=device).view(1, 1, 1, width)
        terms = ((i + dy) * sy - 1.0, (j + dx) * sx - 1.0, sy, sx)
    if len(_GRID_TERMS) > 64:
        _GRID_TERMS.clear()
    _GRID_TERMS[key] = terms
    return terms


def _chunk_size(image: torch.Tensor, taps: int, taps_per_call: int | None) -> int:
    if taps_per_call is not None:
        return max(1, min(taps, int(taps_per_call)))
    if image.device.type != "cpu":
        return taps
    batch, _, height, width = image.shape
    return max(1, min(taps, CPU_CHUNK_SAMPLES // max(batch * height * width, 1)))


def _grid(
    base_rows: torch.Tensor,
    base_cols: torch.Tensor,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    sy: float,
    sx: float,
    shape: tuple[int, ...],
) -> torch.Tensor:
    """Sampling grid (B, m, H, W, 2) = base + motion * scale, (x, y) last. Without autograd
    it is written in place (10x faster than ``torch.stack`` along the last dimension)."""
    if torch.is_grad_enabled() and (alpha.requires_grad or beta.requires_grad):
        return torch.stack((base_cols + beta * sx, base_rows + alpha * sy), dim=-1)
    grid = torch.empty(*shape, 2, dtype=torch.float32, device=alpha.device)
    torch.add(base_cols, beta, alpha=sx, out=grid[..., 0])
    torch.add(base_rows, alpha, alpha=sy, out=grid[..., 1])
    return grid


def _weighted_taps(
    image: torch.Tensor,
    weights: torch.Tensor,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    kernel_size: int,
    dilation: int,
    taps_per_call: int | None,
) -> torch.Tensor:
    """sum_n weights[:, n] * bilinear(image, tap n's position + (alpha, beta)[:, n]); the
    motion has F*F taps or one (broadcast to all taps)."""
    batch, channels, height, width = image.shape
    taps = weights.shape[1]
    base_rows, base_cols, sy, sx = _tap_grid_terms(
        height, width, kernel_size, dilation, image.device
    )
    chunk = _chunk_size(image, taps, taps_per_call)
    out = torch.zeros_like(image)
    per_tap = alpha.shape[1] > 1
    for start in range(0, taps, chunk):
        stop = min(start + chunk, taps)
        m = stop - start
        a = alpha[:, start:stop] if per_tap else alpha
        b = beta[:, start:stop] if per_tap else beta
        grid = _grid(
            base_rows[:, start:stop],
            base_cols[:, start:stop],
            a,
            b,
            sy,
            sx,
            (batch, m, height, width),
        )
        sampled = F.grid_sample(
            image,
            grid.view(batch, m * height, width, 2),
            mode="bilinear",
            padding_mode="border",
            align_corners=True,
        )
        sampled = sampled.view(batch, channels, m, height, width)
        for n in range(m):
            out.addcmul_(sampled[:, :, n], weights[:, start + n : start + n + 1])
    return out


def _check(
    image: torch.Tensor,
    weights: torch.Tensor,
    kernel_size: int,
    *motion: torch.Tensor,
    motion_taps: int,
) -> None:
    if image.dim() != 4:
        raise ValueError(f"image must be (B, C, H, W), got {tuple(image.shape)}")
    batch, _, height, width = image.shape
    taps = kernel_size * kernel_size
    if tuple(weights.shape) != (batch, taps, height, width):
        raise ValueError(
            f"weights must be {(batch, taps, height, width)}, got {tuple(weights.shape)}"
        )
    for tensor in motion:
        if tuple(tensor.shape) != (batch, motion_taps, height, width):
            raise ValueError(
                f"motion must be {(batch, motion_taps, height, width)}, got {tuple(tensor.shape)}"
            )


def wamv(
    image: torch.Tensor,
    weights: torch.Tensor,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    kernel_size: int,
    dilation: int = 1,
    taps_per_call: int | None = None,
) -> torch.Tensor:
    """Warping with asymmetric motion vectors (AdaCoF-style deformable kernels).

    ``out(i, j) = sum_{k,l} W(i,j,k,l) * I(i + d*k + alpha(i,j,k,l), j + d*l + beta(i,j,k,l))``

    ``image`` (B, C, H, W); ``weights``, ``alpha`` (rows), ``beta`` (columns): (B, F*F, H, W),
    taps row-major; offsets in pixels; ``d`` = ``dilation``. Returns (B, C, H, W) fp32.
    """
    _check(image, weights, kernel_size, alpha, beta, motion_taps=kernel_size * kernel_size)
    with torch.autocast(image.device.type, enabled=False):
        return _weighted_taps(
            image.float(),
            weights.float(),
            alpha.float(),
            beta.float(),
            kernel_size,
            dilation,
            taps_per_call,
        )


def wsmv(
    image: torch.Tensor,
    weights: torch.Tensor,
    alpha_s: torch.Tensor,
    beta_s: torch.Tensor,
    kernel_size: int,
    dilation: int = 1,
    taps_per_call: int | None = None,
) -> torch.Tensor:
    """Warping with a symmetric (single, per-pixel) motion vector.

    ``out(i, j) = sum_{k,l} W(i,j,k,l) * I(i + alpha_s(i,j) + d*k, j + beta_s(i,j) + d*l)``:
    the F x F neighbourhood around the displaced point. ``alpha_s`` / ``beta_s`` are
    (B, 1, H, W) (rows / columns, pixels); pass their negation for the other input frame.
    Exact (every tap sampled at its own position); see :func:`wsmv_prewarp` for the cheap
    approximation. Returns (B, C, H, W) fp32.
    """
    _check(image, weights, kernel_size, alpha_s, beta_s, motion_taps=1)
    with torch.autocast(image.device.type, enabled=False):
        return _weighted_taps(
            image.float(),
            weights.float(),
            alpha_s.float(),
            beta_s.float(),
            kernel_size,
            dilation,
            taps_per_call,
        )


def backward_warp(image: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Plain bilinear backward warping by one (B, 1, H, W) motion field (rows, columns)."""
    return wsmv(image, torch.ones_like(alpha), alpha, beta, 1)


def local_filter(
    image: torch.Tensor, weights: torch.Tensor, kernel_size: int, dilation: int = 1
) -> torch.Tensor:
    """Per-pixel F x F filter at integer taps: ``sum_n W_n(i,j) * I(i + d*k_n, j + d*l_n)``,
    edges replicated (shifted views of a padded copy; no sampling)."""
    f = (kernel_size // 2) * dilation
    with torch.autocast(image.device.type, enabled=False):
        image, weights = image.float(), weights.float()
        height, width = image.shape[-2:]
        padded = F.pad(image, (f, f, f, f), mode="replicate") if f else image
        out = torch.zeros_like(image)
        for n, (dy, dx) in enumerate(zip(*tap_offsets(kernel_size, dilation), strict=True)):
            view = padded[:, :, f + dy : f + dy + height, f + dx : f + dx + width]
            out.addcmul_(view, weights[:, n : n + 1])
        return out


def wsmv_prewarp(
    image: torch.Tensor,
    weights: torch.Tensor,
    alpha_s: torch.Tensor,
    beta_s: torch.Tensor,
    kernel_size: int,
    dilation: int = 1,
) -> torch.Tensor:
    """Approximate WSMV: warp once by the symmetric vector, then filter the warped image with
    the F x F weights. Equal to :func:`wsmv` where the motion is constant over the kernel's
    footprint (and at zero motion), F*F times fewer samples. Not the paper's operator: a speed
    option (``symmetric_warp: prewarp``) to be judged by validation quality."""
    warped = backward_warp(image, alpha_s, beta_s)
    return local_filter(warped, weights, kernel_size, dilation)
