"""What a lattice warp's size, quantisation and fitting buy, against the motion bits they cost.

    python benchmarks/lattice_sizes.py [--sizes 4,6,8] [--scales 125,250] [--steps 0,8]
        [--frames 100] [--split models/splits/shared-data-v1.json] [--markdown FILE]

On the first ``--frames`` frames of each held-out clip: the source image is frame 0 coded as
the encoder codes it (AV1, default quality); motion is measured for every other frame (the
default stride) with the lattice warp's own estimate (DIS flow, averaged per cell), fitted by
``steps`` Adam steps as the presets do, quantised at ``value_scale`` and range-coded exactly as
in a stream. Scored on those frames against the originals (PSNR, RGB), next to repeating the
source and warping it by the full-resolution DIS flow (the upper bound of any lattice).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from fomcodec.codec import bitstream as bs
from fomcodec.codec.image_codec import DEFAULT_CODEC, DEFAULT_QUALITY, decode_image, encode_image
from fomcodec.codec.quantization import QuantizationParams, quantize_motion
from fomcodec.codec.refinement import refine_motion
from fomcodec.media.video_io import read_frames
from fomcodec.nets.lattice_warp import LatticeWarp, LatticeWarpConfig
from fomcodec.nets.optical_flow import dis_flow
from fomcodec.tensors import frames_to_images, image_psnr

REPO = Path(__file__).resolve().parents[1]


def full_flow_psnr(source: torch.Tensor, targets: torch.Tensor, preset: str) -> float:
    """PSNR of the source warped by the dense DIS flow from each target to it."""
    size = source.shape[-1]
    flow = dis_flow(targets, source.expand(len(targets), -1, -1, -1), preset) * (2 / size)
    identity = LatticeWarp(LatticeWarpConfig(image_size=size)).identity
    grid = identity + flow.permute(0, 2, 3, 1)
    warped = torch.nn.functional.grid_sample(
        source.expand(len(targets), -1, -1, -1), grid, padding_mode="border", align_corners=False
    )
    return float(image_psnr(warped.clamp(0, 1), targets).mean())


def measure_clip(clip: Path, args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    """(PSNR dB, motion kbit/s) of every setting on one clip, plus the two references."""
    frames = np.stack(list(read_frames(clip, max_frames=args.frames)))
    device = torch.device("cpu")
    source_rgb = decode_image(encode_image(frames[0], DEFAULT_CODEC, DEFAULT_QUALITY))
    source = frames_to_images(source_rgb[None], device)
    stride = bs.DEFAULT_MOTION_STRIDE
    targets = frames_to_images(frames[::stride], device)
    seconds = len(frames) / 25
    out = {
        "repeat the source": (float(image_psnr(source.expand_as(targets), targets).mean()), 0.0),
        "full-resolution DIS flow": (full_flow_psnr(source, targets, "medium"), float("nan")),
    }
    for size in args.sizes:
        lattice = LatticeWarp(LatticeWarpConfig(lattice_size=size))
        estimate = lattice.estimate(targets, source)
        for steps in args.steps:
            for scale in args.scales:
                params = QuantizationParams(scale, 10)
                motion, _ = refine_motion(
                    lambda m, lattice=lattice: lattice.warp(source, m),
                    estimate,
                    targets,
                    steps,
                    quantization=params,
                )
                with torch.no_grad():
                    rendered = lattice.warp(source, motion).clamp(0, 1)
                psnr = float(image_psnr(rendered, targets).mean())
                quantized = quantize_motion(motion.value.numpy(), None, params)
                header = bs.StreamHeader(
                    width=256,
                    height=256,
                    fps=25,
                    frame_count=len(frames),
                    model_name="lattice",
                    weights_hash=lattice.weights_hash,
                    num_kp=size * size,
                    relative_motion=False,
                    has_jacobians=False,
                    motion_stride=stride,
                    quantization=params,
                )
                payload = bs.encode_motion_range(quantized, header)
                kbps = len(payload) * 8 / 1000 / seconds
                out[f"{size}x{size}, {steps} steps, x{scale}"] = (psnr, kbps)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ints = lambda text: [int(x) for x in text.split(",")]  # noqa: E731
    parser.add_argument("--sizes", type=ints, default=[4, 6, 8])
    parser.add_argument("--scales", type=ints, default=[125, 250])
    parser.add_argument("--steps", type=ints, default=[0, 8])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--split", type=Path, default=REPO / "models/splits/shared-data-v1.json")
    parser.add_argument("--clips", type=Path, default=REPO.parent / "shared/data/clips")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = json.loads(args.split.read_text())["validation"]
    results = []
    for name in names:
        results.append(measure_clip(args.clips / name, args))
        print(name, {k: round(v[0], 2) for k, v in results[-1].items()}, flush=True)
    repeat = np.mean([r["repeat the source"][0] for r in results])
    lines = [
        f"first {args.frames} frames of {len(names)} held-out clips, every other frame scored "
        "(the sent ones), source image AV1 at the default quality",
        "",
        "| motion | PSNR dB | gain over repeat dB | smallest gain dB | motion kbit/s |",
        "|---|---|---|---|---|",
    ]
    for key in results[0]:
        psnr = np.mean([r[key][0] for r in results])
        smallest = min(r[key][0] - r["repeat the source"][0] for r in results)
        kbps = np.mean([r[key][1] for r in results])
        rate = "" if np.isnan(kbps) else f"{kbps:.2f}"
        lines.append(f"| {key} | {psnr:.2f} | {psnr - repeat:+.2f} | {smallest:+.2f} | {rate} |")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
