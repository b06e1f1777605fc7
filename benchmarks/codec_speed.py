"""Encode/decode speed of the vox-256 architecture and the default model, and the motion
stream's bit rate on a real clip.

    python benchmarks/codec_speed.py [--clip PATH] [--threads 2] [--markdown docs/benchmarks.md]

Speeds are frames per second of the networks on 256x256 frames (weights do not change the
cost, so untrained weights are used where none ship), measured in one run, with ratios
against vox-256 fp32 from the same run. Encoding = keypoint detection (fp32, as it must be);
decoding = dense motion + generator from cached source features, fp32 and bf16 autocast
(channels_last on the CPU).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from fomcodec.codec import bitstream as bs
from fomcodec.codec.pipeline import Encoder
from fomcodec.media.video_io import probe_video, read_frames
from fomcodec.nets.keypoint_detector import Keypoints
from fomcodec.runtime import autocast, bf16_supported
from fomcodec.zoo import DEFAULT_MODEL, build_model, get_config, load_model

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = REPO.parent / "shared" / "data" / "clips" / "OpenTalker+DPE__d.mp4"


def _timed(fn, repeats: int) -> float:
    fn()
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - started) / repeats


@torch.no_grad()
def encode_fps(model, device: torch.device, batch: int, repeats: int) -> float:
    frames = torch.rand(batch, 3, 256, 256, device=device)
    return batch / _timed(lambda: model.kp_detector(frames), repeats)


@torch.no_grad()
def decode_fps(model, device: torch.device, batch: int, repeats: int, bf16: bool) -> float:
    generator = model.generator
    if device.type == "cpu":
        generator.to(memory_format=torch.channels_last)
    source = torch.rand(1, 3, 256, 256, device=device).contiguous(memory_format=torch.channels_last)
    gen = torch.Generator().manual_seed(0)
    kp = Keypoints(
        (torch.rand(batch, 10, 2, generator=gen) * 1.4 - 0.7).to(device),
        (torch.eye(2) + 0.1 * torch.randn(batch, 10, 2, 2, generator=gen)).to(device),
    )
    with autocast(device, bf16):
        features = generator.encode_source(source)
        small = generator.dense_motion_network.downsample(source)

    def step() -> None:
        with autocast(device, bf16):
            generator.decode(source, features, kp, kp[0], small)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return batch / _timed(step, repeats)


def motion_rate(clip: Path, frames: int) -> dict[str, float | str]:
    """Encode ``frames`` of a real clip with the default model; bytes and kbit/s at 25 fps."""
    try:
        model = load_model(DEFAULT_MODEL, device="cpu")
    except Exception as exc:  # no shipped weights: say so instead of measuring noise
        return {"error": str(exc)}
    stream = Encoder(model, device="cpu").encode_frames(
        read_frames(clip, max_frames=frames), probe_video(clip).fps
    )
    sizes = bs.section_sizes(bs.pack(stream))
    count = stream.header.frame_count
    return {
        "clip": clip.name,
        "frames": count,
        "motion_bytes": sizes["motion"],
        "motion_kbps_at_25fps": sizes["motion"] * 8 / 1000 / (count / 25),
        "image_bytes": sizes["image"],
        "total_bytes": sum(sizes.values()),
        "total_kbps_at_25fps": sum(sizes.values()) * 8 / 1000 / (count / 25),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--clip-frames", type=int, default=250)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--markdown", type=Path, help="also write the results table here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    bf16 = bf16_supported(device)
    rows = []
    for name in ("vox-256", DEFAULT_MODEL):
        model = build_model(get_config(name)).to(device)
        params = sum(p.numel() for p in model.generator.parameters()) / 1e6
        row = {
            "model": name,
            "generator_mparams": params,
            "encode_fps": encode_fps(model, device, args.batch * 2, args.repeats),
            "decode_fps_fp32": decode_fps(model, device, args.batch, args.repeats, False),
        }
        row["decode_fps_bf16"] = (
            decode_fps(model, device, args.batch, args.repeats, True) if bf16 else float("nan")
        )
        rows.append(row)
    base = rows[0]
    lines = [
        f"device: {device} ({platform.processor() or platform.machine()}), "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, batch {args.batch}",
        "",
        "| model | generator Mparams | encode fps | decode fps fp32 | decode fps bf16 "
        "| decode bf16 vs vox-256 fp32 |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['generator_mparams']:.1f} | {row['encode_fps']:.1f} "
            f"| {row['decode_fps_fp32']:.1f} | {row['decode_fps_bf16']:.1f} "
            f"| x{row['decode_fps_bf16'] / base['decode_fps_fp32']:.1f} |"
        )
    rate = (
        motion_rate(args.clip, args.clip_frames)
        if args.clip.is_file()
        else {"error": f"{args.clip} not found"}
    )
    lines.append("")
    if "error" in rate:
        lines.append(f"motion stream: not measured ({rate['error']})")
    else:
        lines.append(
            f"motion stream ({rate['clip']}, {rate['frames']} frames, model {DEFAULT_MODEL}): "
            f"{rate['motion_bytes']} B = {rate['motion_kbps_at_25fps']:.2f} kbit/s at 25 fps; "
            f"whole file {rate['total_bytes']} B = {rate['total_kbps_at_25fps']:.2f} kbit/s "
            f"(source image {rate['image_bytes']} B)"
        )
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
