"""Frame interpolation on held-out clips: the paper's protocol, speed, and use in the codec.

    python benchmarks/evaluate_interpolation.py [--frames 100] [--threads 2]
        [--networks ffi-fast,ffi-fast-proposed-s,ffi-fast-proposed-as]
        [--markdown docs/interpolation.md] [--json FILE] [--time-reversal-ensemble]

1. Protocol (Kim et al.): in each validation clip (people not used in training; centre-square
   256x256 frames, the first ``--frames``), drop every other frame, synthesise it from its two
   neighbours and compare it with the real one: PSNR (RGB) and SSIM, for each trained network
   (the full one and the ablations Proposed-S and Proposed-AS) and three baselines: repeating
   the previous frame, averaging the two frames, and ffmpeg's motion-compensated
   ``minterpolate`` (mi_mode=mci) on the half-rate clip; the same scores by the size of the
   motion between the two frames (the dominant translation, by phase correlation), which
   shows where each method wins. ``--time-reversal-ensemble`` adds the first network averaged
   with its own time-reversed run (twice the cost): a measure of what a better-trained network
   of the same kind could reach.
2. Speed: CPU milliseconds per interpolated 256x256 frame (median of ``--repeats`` rounds in
   which the cases take turns, at ``--threads`` threads, bf16 + channels_last where the config
   asks and the CPU has it), next to the FOMM generator's per-frame cost, measured in the same
   run; a network that ships the approximate symmetric warp is also timed with the exact WSMV
   it was trained with, and the first network also per frame of a batch of four (how the
   decoder runs it).
3. In the codec: each clip encoded with motion for every other frame (``--motion-stride 2``)
   and decoded with the in-between frames from the interpolator or from the generator driven
   by the average of the neighbouring keypoints (and, for reference, encoded with every
   frame's motion): quality of the in-between frames and of all frames against the original,
   decoding time per output frame, and the motion bit rate.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from fomcodec.codec import bitstream as bs
from fomcodec.codec.frame_interpolation import MiddleFrameSynthesizer
from fomcodec.codec.pipeline import Decoder, Encoder
from fomcodec.eval import metrics
from fomcodec.media.video_io import probe_video, read_frames
from fomcodec.nets.keypoint_detector import Keypoints
from fomcodec.runtime import autocast, bf16_supported
from fomcodec.zoo import DEFAULT_MODEL, load_interpolator, load_model

REPO = Path(__file__).resolve().parents[1]
NETWORKS = "ffi-fast,ffi-fast-proposed-s,ffi-fast-proposed-as"
GENERATOR_LABEL = "FOMM generator"
LABELS = {
    "full": "full network",
    "proposed-s": "Proposed-S (symmetric initial estimate)",
    "proposed-as": "Proposed-AS (four-way occlusion blend)",
}
FLOW_LABEL = "DIS flow + refinement U-Net"
MOTION_BINS = (0.0, 1.0, 2.0, 4.0, 8.0, float("inf"))  # pixels of dominant translation


def quality(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Mean PSNR (RGB, dB) and SSIM of two (N, H, W, 3) uint8 stacks."""
    return {
        "psnr": float(metrics.psnr_rgb(reference, candidate).mean()),
        "ssim": float(metrics.ssim(reference, candidate).mean()),
    }


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    return (frames.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def minterpolate(anchors: np.ndarray, fps: Fraction) -> np.ndarray:
    """ffmpeg ``minterpolate`` (motion-compensated, mi_mode=mci) doubling the rate of
    ``anchors`` (N, H, W, 3): the N - 1 synthesised middle frames."""
    exe = metrics.ffmpeg_exe()
    if exe is None:
        raise RuntimeError("imageio-ffmpeg is not installed")
    height, width = anchors.shape[1:3]
    command = [
        exe,
        "-v",
        "error",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{width}x{height}",
        "-r",
        str(fps),
        "-i",
        "-",
        "-vf",
        f"minterpolate=fps={fps * 2}:mi_mode=mci",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-",
    ]
    # ffmpeg stops at the last input timestamp: two copies of the last anchor make it reach it
    padded = np.concatenate([anchors, anchors[-1:], anchors[-1:]])
    out = subprocess.run(command, input=padded.tobytes(), capture_output=True, check=True)
    frames = np.frombuffer(out.stdout, np.uint8).reshape(-1, height, width, 3)
    if len(frames) < 2 * len(anchors) - 1:
        raise RuntimeError(f"minterpolate gave {len(frames)} frames for {len(anchors)} inputs")
    doubled = frames[: 2 * len(anchors) - 1]
    # alignment check: the even output frames are the anchors themselves
    drift = metrics.psnr_rgb(anchors[: len(doubled[::2])], doubled[::2]).mean()
    if drift < 40:
        raise RuntimeError(f"minterpolate output is not aligned with its input ({drift:.1f} dB)")
    return doubled[1::2].copy()


def dominant_shift(first: np.ndarray, second: np.ndarray, size: int = 128) -> np.ndarray:
    """Length in pixels of the dominant translation between each pair of (N, H, W, 3) uint8
    frames: phase correlation of grey, Hann-windowed copies downscaled to ``size`` square, the
    peak refined to a fraction of a pixel by a parabola through its neighbours."""

    def grey(frames: np.ndarray) -> np.ndarray:
        luma = torch.from_numpy(metrics.luma(frames))[:, None]
        small = torch.nn.functional.interpolate(luma, size=(size, size), mode="area")[:, 0].numpy()
        window = np.outer(np.hanning(size), np.hanning(size))
        return (small - small.mean((1, 2), keepdims=True)) * window

    spectrum = np.fft.rfft2(grey(second)) * np.conj(np.fft.rfft2(grey(first)))
    correlation = np.fft.irfft2(spectrum / (np.abs(spectrum) + 1e-12), s=(size, size))
    shifts = []
    for surface in correlation:
        row, col = np.unravel_index(int(surface.argmax()), surface.shape)
        offset = []
        for line, at in ((surface[:, col], row), (surface[row], col)):
            left, centre, right = line[at - 1], line[at], line[(at + 1) % size]
            curvature = left - 2 * centre + right
            peak = at + (0.5 * (left - right) / curvature if abs(curvature) > 1e-12 else 0.0)
            offset.append(peak - size if peak > size / 2 else peak)
        rows, cols = offset
        shifts.append(np.hypot(rows * first.shape[1] / size, cols * first.shape[2] / size))
    return np.asarray(shifts)


@torch.no_grad()
def run_network(
    synthesize: MiddleFrameSynthesizer, first: np.ndarray, second: np.ndarray, batch: int = 8
) -> torch.Tensor:
    """The middle frames between (N, H, W, 3) uint8 stacks, as an (N, 3, H, W) float tensor."""
    return torch.cat(
        [
            synthesize(to_tensor(first[i : i + batch]), to_tensor(second[i : i + batch]))
            for i in range(0, len(first), batch)
        ]
    )


def protocol(
    clips: dict[str, np.ndarray],
    networks: dict[str, MiddleFrameSynthesizer],
    fps: dict[str, Fraction],
    time_reversal_ensemble: bool = False,
) -> dict[str, dict]:
    """``methods``: per method, mean PSNR / SSIM over every synthesised frame of every clip;
    ``by_motion``: per range of dominant translation (pixels), its frame count and each
    method's mean PSNR."""
    psnr: dict[str, list[np.ndarray]] = {}
    ssim: dict[str, list[np.ndarray]] = {}
    shifts = []

    def add(method: str, reference: np.ndarray, candidate: np.ndarray) -> None:
        psnr.setdefault(method, []).append(metrics.psnr_rgb(reference, candidate))
        ssim.setdefault(method, []).append(metrics.ssim(reference, candidate))

    for name, frames in clips.items():
        anchors = frames[0::2]
        first, second = anchors[:-1], anchors[1:]
        target = frames[1 : 2 * len(first) : 2]
        shifts.append(dominant_shift(first, second))
        add("repeat previous frame", target, first)
        average = ((first.astype(np.uint16) + second + 1) // 2).astype(np.uint8)
        add("average of the two frames", target, average)
        add("ffmpeg minterpolate (mci)", target, minterpolate(anchors, fps[name] / 2))
        for index, (label, synthesize) in enumerate(networks.items()):
            middle = run_network(synthesize, first, second)
            add(label, target, to_uint8(middle))
            if time_reversal_ensemble and index == 0:
                reversed_middle = run_network(synthesize, second, first)
                add(
                    f"{label}, averaged with its time-reversed run (2x cost)",
                    target,
                    to_uint8((middle + reversed_middle) / 2),
                )
        print(f"protocol: {name} ({len(target)} frames)", flush=True)
    shift = np.concatenate(shifts)
    methods = {
        m: {
            "psnr": float(np.concatenate(psnr[m]).mean()),
            "ssim": float(np.concatenate(ssim[m]).mean()),
            "frames": len(shift),
        }
        for m in psnr
    }
    by_motion = {}
    for low, high in zip(MOTION_BINS[:-1], MOTION_BINS[1:], strict=True):
        inside = (shift >= low) & (shift < high)
        if inside.any():
            label = f"{low:g}-{high:g} px" if np.isfinite(high) else f">= {low:g} px"
            by_motion[label] = {"frames": int(inside.sum())} | {
                m: float(np.concatenate(v)[inside].mean()) for m, v in psnr.items()
            }
    return {"methods": methods, "by_motion": by_motion}


def timed_ms(cases: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median milliseconds of each callable over ``repeats`` rounds after one warm-up round.
    The callables take turns within each round, so a machine that slows down or speeds up
    (a shared host) shifts them all alike and their ratios hold."""
    times: dict[str, list[float]] = {label: [] for label in cases}
    for round_ in range(repeats + 1):
        for label, fn in cases.items():
            started = time.perf_counter()
            fn()
            if round_:
                times[label].append(time.perf_counter() - started)
    return {label: 1000 * statistics.median(values) for label, values in times.items()}


@torch.no_grad()
def speed(
    networks: dict[str, MiddleFrameSynthesizer], model, repeats: int, frames: np.ndarray
) -> dict[str, float]:
    """ms per 256x256 frame (batch of one unless named) between ``frames[0]`` and
    ``frames[2]`` (real content: the cost of the warps depends on the motion the network
    finds): each network, the ones that ship the approximate symmetric warp also with the exact
    WSMV, the first one per frame of a batch of four pairs, and the FOMM generator of
    ``model`` decoding one frame from cached source features, as the decoder runs it."""
    frame0, frame1 = to_tensor(frames[0:1]), to_tensor(frames[2:3])
    synthesizers = dict(networks)
    for label, synthesize in networks.items():
        if getattr(synthesize.model.config, "symmetric_warp", None) == "prewarp":
            exact = copy.deepcopy(synthesize.model)
            exact.config = exact.config.replace(symmetric_warp="exact")
            synthesizers[f"{label}, exact WSMV (as trained)"] = MiddleFrameSynthesizer(exact)
    cases = {label: (lambda s=s: s(frame0, frame1), 1) for label, s in synthesizers.items()}
    first_label, first = next(iter(networks.items()))
    pairs = min(4, (len(frames) - 1) // 2)
    batch0, batch1 = to_tensor(frames[0 : 2 * pairs : 2]), to_tensor(frames[2 : 2 * pairs + 1 : 2])
    cases[f"{first_label}, per frame of a batch of {len(batch0)}"] = (
        lambda: first(batch0, batch1),
        len(batch0),
    )
    generator = model.generator.to(memory_format=torch.channels_last)
    source = frame0.contiguous(memory_format=torch.channels_last)
    bf16 = bf16_supported(torch.device("cpu"))
    kp = model.kp_detector(frame0)
    driving = Keypoints(kp.value + 0.01, kp.jacobian)
    with autocast(torch.device("cpu"), bf16):
        features = generator.encode_source(source)

    def generate() -> None:
        with autocast(torch.device("cpu"), bf16):
            generator.decode(source, features, driving, kp)

    generator_label = f"{GENERATOR_LABEL} ({model.model_name})"
    cases[generator_label] = (generate, 1)
    medians = timed_ms({label: fn for label, (fn, _) in cases.items()}, repeats)
    return {label: medians[label] / count for label, (_, count) in cases.items()}


def in_codec(
    clips: dict[str, np.ndarray], fps: dict[str, Fraction], model, interpolators: list[str]
) -> dict[str, dict[str, float]]:
    """Codec with motion every other frame, in-betweens from each method (each of
    ``interpolators``, and averaged keypoints); reference: every frame's motion sent."""
    rows: dict[str, list[dict[str, float]]] = {}
    for name, frames in clips.items():
        count = len(frames) if len(frames) % 2 else len(frames) - 1  # end on a sent frame
        frames = frames[:count]
        odd = np.arange(1, count, 2)
        methods = [
            ("motion every frame (reference)", 1, {}),
            *(
                (f"stride 2 + {name}", 2, {"inbetween": "interpolator", "interpolator": name})
                for name in interpolators
            ),
            ("stride 2 + averaged keypoints", 2, {"inbetween": "keypoints"}),
        ]
        for label, stride, options in methods:
            stream = Encoder(model, device="cpu", motion_stride=stride).encode_frames(
                iter(frames), fps[name]
            )
            data = bs.pack(stream)
            decoder = Decoder(model, device="cpu", **options)
            if stride > 1 and options["inbetween"] == "interpolator":
                decoder.synthesizer()
            started = time.perf_counter()
            decoded = np.concatenate(list(decoder.decode_stream(bs.unpack(data))))
            seconds = time.perf_counter() - started
            rows.setdefault(label, []).append(
                {
                    **{f"inbetween_{k}": v for k, v in quality(frames[odd], decoded[odd]).items()},
                    **{f"all_{k}": v for k, v in quality(frames[1:], decoded[1:]).items()},
                    "ms_per_frame": 1000 * seconds / count,
                    "motion_kbps": bs.section_sizes(data)["motion"]
                    * 8
                    / 1000
                    / (count / float(fps[name])),
                    "frames": count,
                }
            )
        print(f"codec: {name}", flush=True)
    return {
        label: {k: float(np.mean([r[k] for r in values])) for k in values[0]}
        for label, values in rows.items()
    }


def machine() -> str:
    """The CPU and the precision the networks ran in, for the page's header."""
    precision = "bf16" if bf16_supported(torch.device("cpu")) else "fp32"
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch CPU "
        f"capability {torch.backends.cpu.get_cpu_capability()}, {precision}"
    )


def markdown(
    args: argparse.Namespace, clips: dict[str, np.ndarray], results: dict, model_name: str
) -> str:
    p, s, c = results["protocol"], results["speed"], results["codec"]
    methods, by_motion = p["methods"], p["by_motion"]
    command = "python benchmarks/evaluate_interpolation.py " + " ".join(sys.argv[1:])
    lines = [
        "# Frame interpolation: quality and speed",
        "",
        f"Made by `{command.strip()}` ({machine()}). Commentary: "
        "[models/interpolators/MODEL_CARD.md](../models/interpolators/MODEL_CARD.md).",
        "",
        f"Validation: {len(clips)} held-out clips ({', '.join(clips)}), first "
        f"{args.frames} frames each, 256x256; {torch.get_num_threads()} CPU threads.",
        "",
        "## Protocol: drop every other frame, synthesise it, compare with the real one",
        "",
        "| method | PSNR dB | SSIM | frames |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {m} | {v['psnr']:.2f} | {v['ssim']:.4f} | {v['frames']} |" for m, v in methods.items()
    ]
    lines += [
        "",
        "### PSNR dB by the motion between the two frames (dominant translation)",
        "",
        "| method | " + " | ".join(f"{b} ({v['frames']})" for b, v in by_motion.items()) + " |",
        "|---|" + "---|" * len(by_motion),
    ]
    lines += [
        f"| {m} | " + " | ".join(f"{v[m]:.2f}" for v in by_motion.values()) + " |" for m in methods
    ]
    generator = next(v for m, v in s.items() if m.startswith(GENERATOR_LABEL))
    lines += [
        "",
        "## Speed: ms per interpolated 256x256 frame (batch 1 unless named, median "
        f"of {args.repeats}, taking turns; frames 0 and 2 of {next(iter(clips))})",
        "",
        "| network | ms/frame | x FOMM generator |",
        "|---|---|---|",
    ]
    lines += [f"| {m} | {v:.1f} | {v / generator:.2f} |" for m, v in s.items()]
    lines += [
        "",
        f"## In the codec ({model_name}): in-between frames",
        "",
        "| decoding | in-between PSNR | in-between SSIM | all-frames PSNR | all SSIM | "
        "decode ms/frame | motion kbit/s |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {m} | {v['inbetween_psnr']:.2f} | {v['inbetween_ssim']:.4f} | "
        f"{v['all_psnr']:.2f} | {v['all_ssim']:.4f} | {v['ms_per_frame']:.1f} | "
        f"{v['motion_kbps']:.2f} |"
        for m, v in c.items()
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--networks",
        default=NETWORKS,
        help="comma-separated interpolator names or .safetensors paths",
    )
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--split", type=Path, default=REPO / "models/splits/shared-data-v1.json")
    parser.add_argument("--clips", type=Path, default=REPO.parent / "shared/data/clips")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--skip-codec", action="store_true")
    parser.add_argument(
        "--time-reversal-ensemble",
        action="store_true",
        help="also score the first network averaged with its time-reversed run",
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = json.loads(args.split.read_text())["validation"]
    clips = {n: np.stack(list(read_frames(args.clips / n, max_frames=args.frames))) for n in names}
    fps = {n: probe_video(args.clips / n).fps for n in names}
    networks = {}
    for spec in args.networks.split(","):
        network = load_interpolator(spec)
        name = Path(spec).stem if spec.endswith(".safetensors") else spec
        variant = getattr(network.config, "variant", None)
        label = f"{name}: {LABELS[variant] if variant else FLOW_LABEL}"
        networks[label] = MiddleFrameSynthesizer(network)
    model = load_model(args.model, device="cpu")
    results = {
        "protocol": protocol(clips, networks, fps, args.time_reversal_ensemble),
        "speed": speed(networks, model, args.repeats, next(iter(clips.values()))),
        "codec": {} if args.skip_codec else in_codec(clips, fps, model, args.networks.split(",")),
    }
    text = markdown(args, clips, results, model.model_name)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.markdown:
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()
