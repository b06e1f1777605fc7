"""Frame interpolation on held-out clips: the paper's protocol, speed, and use in the codec.

    python benchmarks/evaluate_interpolation.py [--frames 100] [--threads 2]
        [--networks ffi-fast,ffi-fast-proposed-s,ffi-fast-proposed-as]
        [--markdown docs/interpolation.md] [--json FILE]

1. Protocol (Kim et al.): in each validation clip (people not used in training; centre-square
   256x256 frames, the first ``--frames``), drop every other frame, synthesise it from its two
   neighbours and compare it with the real one: PSNR (RGB) and SSIM, for each trained network
   (the full one and the ablations Proposed-S and Proposed-AS) and three baselines: repeating
   the previous frame, averaging the two frames, and ffmpeg's motion-compensated
   ``minterpolate`` (mi_mode=mci) on the half-rate clip.
2. Speed: CPU milliseconds per interpolated 256x256 frame (median of ``--repeats`` single-frame
   runs at ``--threads`` threads, bf16 + channels_last where the config asks and the CPU has
   it), next to the FOMM generator's per-frame cost, measured in the same run.
3. In the codec: each clip encoded with motion for every other frame (``--motion-stride 2``)
   and decoded with the in-between frames from the interpolator or from the generator driven
   by the average of the neighbouring keypoints (and, for reference, encoded with every
   frame's motion): quality of the in-between frames and of all frames against the original,
   decoding time per output frame, and the motion bit rate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from fomcodec import bitstream as bs
from fomcodec import metrics
from fomcodec.codec import Decoder, Encoder
from fomcodec.frame_interpolation import MiddleFrameSynthesizer
from fomcodec.nets.interpolator import load_interpolator
from fomcodec.nets.keypoint_detector import Keypoints
from fomcodec.runtime import autocast, bf16_supported
from fomcodec.video_io import probe_video, read_frames
from fomcodec.zoo import DEFAULT_MODEL, load_model

REPO = Path(__file__).resolve().parents[1]
NETWORKS = "ffi-fast,ffi-fast-proposed-s,ffi-fast-proposed-as"
LABELS = {"full": "full network", "proposed-s": "Proposed-S (symmetric initial estimate)",
          "proposed-as": "Proposed-AS (four-way occlusion blend)"}


def quality(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Mean PSNR (RGB, dB) and SSIM of two (N, H, W, 3) uint8 stacks."""
    return {"psnr": float(metrics.psnr_rgb(reference, candidate).mean()),
            "ssim": float(metrics.ssim(reference, candidate).mean())}


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
    command = [exe, "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s",
               f"{width}x{height}", "-r", str(fps), "-i", "-", "-vf",
               f"minterpolate=fps={fps * 2}:mi_mode=mci", "-f", "rawvideo", "-pix_fmt",
               "rgb24", "-"]
    # ffmpeg stops at the last input timestamp: two copies of the last anchor make it reach it
    padded = np.concatenate([anchors, anchors[-1:], anchors[-1:]])
    out = subprocess.run(command, input=padded.tobytes(), capture_output=True, check=True)
    frames = np.frombuffer(out.stdout, np.uint8).reshape(-1, height, width, 3)
    if len(frames) < 2 * len(anchors) - 1:
        raise RuntimeError(f"minterpolate gave {len(frames)} frames for {len(anchors)} inputs")
    doubled = frames[:2 * len(anchors) - 1]
    # alignment check: the even output frames are the anchors themselves
    drift = metrics.psnr_rgb(anchors[:len(doubled[::2])], doubled[::2]).mean()
    if drift < 40:
        raise RuntimeError(f"minterpolate output is not aligned with its input ({drift:.1f} dB)")
    return doubled[1::2].copy()


@torch.no_grad()
def run_network(synthesize: MiddleFrameSynthesizer, first: np.ndarray, second: np.ndarray,
                batch: int = 8) -> np.ndarray:
    out = [to_uint8(synthesize(to_tensor(first[i:i + batch]), to_tensor(second[i:i + batch])))
           for i in range(0, len(first), batch)]
    return np.concatenate(out)


def protocol(clips: dict[str, np.ndarray], networks: dict[str, MiddleFrameSynthesizer],
             fps: dict[str, Fraction]) -> dict[str, dict[str, float]]:
    """Per method: mean PSNR / SSIM over every synthesised frame of every clip."""
    scores: dict[str, list[dict[str, float]]] = {}

    def add(method: str, reference: np.ndarray, candidate: np.ndarray) -> None:
        scores.setdefault(method, []).append(quality(reference, candidate) | {
            "frames": len(reference)})

    for name, frames in clips.items():
        anchors = frames[0::2]
        first, second = anchors[:-1], anchors[1:]
        target = frames[1:2 * len(first):2]
        add("repeat previous frame", target, first)
        average = ((first.astype(np.uint16) + second + 1) // 2).astype(np.uint8)
        add("average of the two frames", target, average)
        add("ffmpeg minterpolate (mci)", target, minterpolate(anchors, fps[name] / 2))
        for label, synthesize in networks.items():
            add(label, target, run_network(synthesize, first, second))
        print(f"protocol: {name} ({len(target)} frames)", flush=True)
    return {method: {k: float(np.average([r[k] for r in rows],
                                         weights=[r["frames"] for r in rows]))
                     for k in ("psnr", "ssim")} | {"frames": sum(r["frames"] for r in rows)}
            for method, rows in scores.items()}


def timed_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


@torch.no_grad()
def speed(networks: dict[str, MiddleFrameSynthesizer], model, repeats: int,
          frames: np.ndarray) -> dict[str, float]:
    """ms per 256x256 frame (batch of one) between ``frames[0]`` and ``frames[2]`` (real
    content: the cost of the warps depends on the motion the network finds): each network,
    and the FOMM generator of ``model`` decoding one frame from cached source features, as
    the decoder runs it."""
    frame0, frame1 = to_tensor(frames[0:1]), to_tensor(frames[2:3])
    result = {label: timed_ms(lambda s=s: s(frame0, frame1), repeats)
              for label, s in networks.items()}
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

    result[f"FOMM generator ({model.model_name})"] = timed_ms(generate, repeats)
    return result


def in_codec(clips: dict[str, np.ndarray], fps: dict[str, Fraction], model,
             interpolator: str) -> dict[str, dict[str, float]]:
    """Codec with motion every other frame, in-betweens from each method; reference: every
    frame's motion sent."""
    rows: dict[str, list[dict[str, float]]] = {}
    for name, frames in clips.items():
        count = len(frames) if len(frames) % 2 else len(frames) - 1  # end on a sent frame
        frames = frames[:count]
        odd = np.arange(1, count, 2)
        for label, stride, options in (
                ("motion every frame (reference)", 1, {}),
                ("stride 2 + interpolator", 2, {"inbetween": "interpolator",
                                                "interpolator": interpolator}),
                ("stride 2 + averaged keypoints", 2, {"inbetween": "keypoints"})):
            stream = Encoder(model, device="cpu", motion_stride=stride).encode_frames(
                iter(frames), fps[name])
            data = bs.pack(stream)
            decoder = Decoder(model, device="cpu", **options)
            if stride > 1 and options["inbetween"] == "interpolator":
                decoder.synthesizer()
            started = time.perf_counter()
            decoded = np.concatenate(list(decoder.decode_stream(bs.unpack(data))))
            seconds = time.perf_counter() - started
            rows.setdefault(label, []).append({
                **{f"inbetween_{k}": v for k, v in quality(frames[odd], decoded[odd]).items()},
                **{f"all_{k}": v for k, v in quality(frames[1:], decoded[1:]).items()},
                "ms_per_frame": 1000 * seconds / count,
                "motion_kbps": bs.section_sizes(data)["motion"] * 8 / 1000
                / (count / float(fps[name])),
                "frames": count})
        print(f"codec: {name}", flush=True)
    return {label: {k: float(np.mean([r[k] for r in values])) for k in values[0]}
            for label, values in rows.items()}


def markdown(args: argparse.Namespace, clips: dict[str, np.ndarray], results: dict,
             model_name: str) -> str:
    p, s, c = results["protocol"], results["speed"], results["codec"]
    command = "python benchmarks/evaluate_interpolation.py " + " ".join(sys.argv[1:])
    lines = ["# Frame interpolation: quality and speed", "",
             f"Made by `{command.strip()}` ({platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} cores). Commentary: "
             "[models/interpolators/MODEL_CARD.md](../models/interpolators/MODEL_CARD.md).", "",
             f"Validation: {len(clips)} held-out clips ({', '.join(clips)}), first "
             f"{args.frames} frames each, 256x256; {torch.get_num_threads()} CPU threads.", "",
             "## Protocol: drop every other frame, synthesise it, compare with the real one",
             "", "| method | PSNR dB | SSIM | frames |", "|---|---|---|---|"]
    lines += [f"| {m} | {v['psnr']:.2f} | {v['ssim']:.4f} | {v['frames']} |"
              for m, v in p.items()]
    lines += ["", "## Speed: ms per interpolated 256x256 frame (batch 1, median of "
              f"{args.repeats}; frames 0 and 2 of {next(iter(clips))})", "",
              "| network | ms/frame |", "|---|---|"]
    lines += [f"| {m} | {v:.1f} |" for m, v in s.items()]
    lines += ["", f"## In the codec ({model_name}): in-between frames", "",
              "| decoding | in-between PSNR | in-between SSIM | all-frames PSNR | all SSIM | "
              "decode ms/frame | motion kbit/s |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {m} | {v['inbetween_psnr']:.2f} | {v['inbetween_ssim']:.4f} | "
              f"{v['all_psnr']:.2f} | {v['all_ssim']:.4f} | {v['ms_per_frame']:.1f} | "
              f"{v['motion_kbps']:.2f} |" for m, v in c.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default=NETWORKS,
                        help="comma-separated interpolator names or .safetensors paths")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--split", type=Path, default=REPO / "models/splits/shared-data-v1.json")
    parser.add_argument("--clips", type=Path, default=REPO.parent / "shared/data/clips")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--skip-codec", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = json.loads(args.split.read_text())["validation"]
    clips = {n: np.stack(list(read_frames(args.clips / n, max_frames=args.frames)))
             for n in names}
    fps = {n: probe_video(args.clips / n).fps for n in names}
    networks = {}
    for spec in args.networks.split(","):
        network = load_interpolator(spec)
        name = Path(spec).stem if spec.endswith(".safetensors") else spec
        label = f"{name}: {LABELS[network.config.variant]}"
        networks[label] = MiddleFrameSynthesizer(network)
    model = load_model(args.model, device="cpu")
    results = {"protocol": protocol(clips, networks, fps),
               "speed": speed(networks, model, args.repeats, next(iter(clips.values()))),
               "codec": {} if args.skip_codec else in_codec(clips, fps, model,
                                                          args.networks.split(",")[0])}
    text = markdown(args, clips, results, model.model_name)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.markdown:
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()
