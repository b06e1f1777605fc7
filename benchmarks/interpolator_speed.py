"""Speed of the facial frame interpolator (paper size and the shipped speed configuration)
against the FOMM generator of the default model, per 256x256 frame on the CPU.

    python benchmarks/interpolator_speed.py [--threads 1,2] [--repeats 3] [--markdown FILE]

For each interpolator config: GMAC (convolutions), parameters, and ms per interpolated frame in
fp32 and bf16 autocast (channels_last in both), at each thread count; bf16 only where the CPU
has fast bf16 (``runtime.bf16_supported``). For comparison, in the same run: one WAMV warp of a
1x32x256x256 input with F = 5, and the FOMM generator of the default model
(``generator.decode`` from cached source features, as the decoder runs it). Weights do not
change the cost, so untrained weights are used. Times are medians of ``--repeats`` runs after
one warm-up (min in brackets); the paper-size network runs ``--paper-repeats`` times.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from fomcodec.nets.interpolator import FacialFrameInterpolator
from fomcodec.nets.keypoint_detector import Keypoints
from fomcodec.nets.warping import wamv
from fomcodec.runtime import autocast, bf16_supported
from fomcodec.zoo import DEFAULT_MODEL, build_model, get_config, get_interpolator_config

SIZE = 256


def _timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(median, min) seconds of ``repeats`` calls after one warm-up."""
    fn()
    if repeats < 1:
        return float("nan"), float("nan")
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), min(times)


def conv_gmac(model: torch.nn.Module, run: Callable[[], object]) -> float:
    """Multiply-accumulates of every Conv2d in one call of ``run``, in GMAC."""
    total = 0

    def hook(module: torch.nn.Conv2d, _inputs: object, output: torch.Tensor) -> None:
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1]
        total += output.numel() * module.in_channels // module.groups * k

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)
    ]
    with torch.inference_mode():
        run()
    for handle in handles:
        handle.remove()
    return total / 1e9


def interpolator_ms(
    model: FacialFrameInterpolator, bf16: bool, repeats: int, batch: int
) -> tuple[float, float]:
    device = torch.device("cpu")
    model = model.to(memory_format=torch.channels_last)
    gen = torch.Generator().manual_seed(0)
    frame0 = torch.rand(batch, 3, SIZE, SIZE, generator=gen)
    frame1 = (frame0 + 0.05 * torch.randn(batch, 3, SIZE, SIZE, generator=gen)).clamp(0, 1)

    def step() -> None:
        with torch.inference_mode(), autocast(device, bf16):
            model(frame0, frame1)

    median, best = _timed(step, repeats)
    return 1000 * median / batch, 1000 * best / batch


def fomm_ms(
    generator: torch.nn.Module, bf16: bool, repeats: int, batch: int
) -> tuple[float, float]:
    """A FOMM generator's decode from cached source features (the decoder's per-frame work),
    channels_last."""
    device = torch.device("cpu")
    generator.to(memory_format=torch.channels_last)
    source = torch.rand(1, 3, SIZE, SIZE).contiguous(memory_format=torch.channels_last)
    gen = torch.Generator().manual_seed(0)
    kp = Keypoints(
        torch.rand(batch, 10, 2, generator=gen) * 1.4 - 0.7,
        torch.eye(2) + 0.1 * torch.randn(batch, 10, 2, 2, generator=gen),
    )
    with torch.inference_mode(), autocast(device, bf16):
        features = generator.encode_source(source)
        small = generator.dense_motion_network.downsample(source)

    def step() -> None:
        with torch.inference_mode(), autocast(device, bf16):
            generator.decode(source, features, kp, kp[0], small)

    median, best = _timed(step, repeats)
    return 1000 * median / batch, 1000 * best / batch


def warp_ms(repeats: int) -> tuple[float, float]:
    """One WAMV of a 1x32x256x256 input with F = 5 (25 taps)."""
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, 32, SIZE, SIZE, generator=gen)
    weights = torch.softmax(torch.randn(1, 25, SIZE, SIZE, generator=gen), dim=1)
    alpha = torch.randn(1, 25, SIZE, SIZE, generator=gen)
    beta = torch.randn(1, 25, SIZE, SIZE, generator=gen)

    def step() -> None:
        with torch.inference_mode():
            wamv(image, weights, alpha, beta, 5)

    median, best = _timed(step, repeats)
    return 1000 * median, 1000 * best


def _cell(value: tuple[float, float] | None) -> str:
    return "-" if value is None else f"{value[0]:.1f} ({value[1]:.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--configs",
        default="ffi-paper,ffi-fast",
        help="interpolator names or YAML paths, comma-separated",
    )
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--paper-repeats",
        type=int,
        default=1,
        help="repeats for configs named *paper* (about 1 s per frame)",
    )
    parser.add_argument("--batch", type=int, default=1, help="frames per call")
    parser.add_argument("--no-bf16", action="store_true", help="skip the bf16 runs")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    cpu = torch.device("cpu")
    bf16 = bf16_supported(cpu) and not args.no_bf16
    precisions = [False, True] if bf16 else [False]
    rows: list[tuple[str, str, dict[tuple[int, bool], tuple[float, float] | None]]] = []

    for name in args.configs.split(","):
        config = get_interpolator_config(name.strip())
        model = FacialFrameInterpolator(config).eval()
        frame = torch.rand(1, 3, SIZE, SIZE)
        gmac = conv_gmac(model, lambda m=model, f=frame: m(f, f))
        params = sum(p.numel() for p in model.parameters()) / 1e6
        repeats = args.paper_repeats if "paper" in config.name else args.repeats
        cells: dict[tuple[int, bool], tuple[float, float] | None] = {}
        for count in threads:
            torch.set_num_threads(count)
            for precision in precisions:
                cells[(count, precision)] = interpolator_ms(model, precision, repeats, args.batch)
        rows.append((config.name, f"{gmac:.1f} GMAC, {params:.2f} M params", cells))

    generator = build_model(get_config(DEFAULT_MODEL)).generator
    fomm_gmac = conv_gmac(generator, lambda: fomm_ms(generator, False, 0, 1))
    cells = {}
    warps = {}
    for count in threads:
        torch.set_num_threads(count)
        for precision in precisions:
            cells[(count, precision)] = fomm_ms(generator, precision, args.repeats, args.batch)
        warps[count] = warp_ms(max(1, args.repeats // 2))
    rows.append(
        (f"FOMM {DEFAULT_MODEL} generator.decode", f"{fomm_gmac:.1f} GMAC (decode only)", cells)
    )

    header = ["model", "size"] + [
        f"{t} thr {'bf16' if p else 'fp32'}" for t in threads for p in precisions
    ]
    lines = [
        f"device: cpu ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__}), "
        f"256x256, batch {args.batch}; ms per frame, median (min); channels_last",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for name, size, cells in rows:
        lines.append(
            "| "
            + " | ".join(
                [name, size] + [_cell(cells.get((t, p))) for t in threads for p in precisions]
            )
            + " |"
        )
    lines.append("")
    lines.append(
        "WAMV alone, 1x32x256x256, F=5 (fp32): "
        + ", ".join(f"{t} thr {_cell(warps[t])} ms" for t in threads)
    )
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
