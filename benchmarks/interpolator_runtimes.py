"""Which CPU runtime runs the flow interpolator fastest: eager PyTorch against TorchScript and
``torch.compile``, measured in one run, with their agreement.

    python benchmarks/interpolator_runtimes.py [--interpolator ffi-flow] [--threads 2]
        [--batch 4] [--repeats 20]

Four frames of a held-out clip, pairs (0, 2), (2, 4), ...: the whole interpolator per frame
(DIS flow, warps and the refinement U-Net) with the U-Net run by each runtime, plus the DIS
flow alone; the runtimes take turns within each round (medians). The eager bf16 +
channels_last model is the reference: the largest difference of the others' middle frames
is printed. ``torch.compile``'s first call (compilation) is timed on its own. ONNX Runtime
is not measured: exporting needs the ``onnx`` package, whose protobuf (>= 6) conflicts with
the face detector's (mediapipe, protobuf < 5) in one environment.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from fomcodec.codec.frame_interpolation import MiddleFrameSynthesizer
from fomcodec.media.video_io import read_frames
from fomcodec.nets.optical_flow import dis_flow
from fomcodec.zoo import load_interpolator

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interpolator", default="ffi-flow")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--split", type=Path, default=REPO / "models/splits/shared-data-v1.json")
    parser.add_argument("--clips", type=Path, default=REPO.parent / "shared/data/clips")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    name = json.loads(args.split.read_text())["validation"][0]
    count = 2 * args.batch + 1
    frames = np.stack(list(read_frames(args.clips / name, 256, max_frames=count)))
    images = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    first, second = images[0 : count - 1 : 2], images[2:count:2]
    model = load_interpolator(args.interpolator).requires_grad_(False)
    preset = model.config.flow_preset
    synthesizers = {"eager, bf16": MiddleFrameSynthesizer(model)}
    synthesizers["eager, fp32"] = MiddleFrameSynthesizer(copy.deepcopy(model), bf16=False)
    example = torch.randn(args.batch, 14, 128, 128).contiguous(memory_format=torch.channels_last)
    scripted = copy.deepcopy(model)
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.trace is deprecated in torch 2.13
        scripted.refine = torch.jit.freeze(torch.jit.trace(scripted.refine.eval(), example))
    synthesizers["TorchScript (traced, frozen), bf16"] = MiddleFrameSynthesizer(scripted)
    compiled = copy.deepcopy(model)
    compiled.refine = torch.compile(compiled.refine)
    synthesizers["torch.compile (inductor), bf16"] = MiddleFrameSynthesizer(compiled)
    started = time.perf_counter()
    synthesizers["torch.compile (inductor), bf16"](first, second)
    compile_s = time.perf_counter() - started
    cases: dict[str, Callable[[], object]] = {
        label: (lambda s=s: s(first, second)) for label, s in synthesizers.items()
    }
    cases["DIS flow alone (both ways)"] = lambda: (
        dis_flow(first, second, preset),
        dis_flow(second, first, preset),
    )
    times: dict[str, list[float]] = {label: [] for label in cases}
    for round_ in range(args.repeats + 1):
        for label, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            if round_:
                times[label].append(time.perf_counter() - t0)
    reference = synthesizers["eager, bf16"](first, second)
    print(
        f"{platform.machine()}, {args.threads} threads, torch {torch.__version__}, "
        f"{args.interpolator}, batches of {args.batch} pairs of {name}, median of {args.repeats}\n"
    )
    print("| runtime | ms per frame | x eager bf16 | max difference from eager bf16 |")
    print("|---|---|---|---|")
    base = statistics.median(times["eager, bf16"])
    for label, values in times.items():
        median = statistics.median(values)
        difference = (
            f"{(synthesizers[label](first, second) - reference).abs().max().item():.4f}"
            if label in synthesizers
            else "-"
        )
        print(
            f"| {label} | {1000 * median / args.batch:.2f} | {median / base:.2f} | {difference} |"
        )
    print(f"\ntorch.compile's first call (compiling): {compile_s:.1f} s")


if __name__ == "__main__":
    main()
