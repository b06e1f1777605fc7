"""Decoding time per frame of the base-layer mode against the keypoint-only decoder, in one run.

    python benchmarks/base_layer_speed.py [--clip PATH] [--frames 250] [--threads 2] [--repeats 3]
        [--fusers detail,fuse-fast,fuse-small]

One held-out clip is encoded with the encoder's defaults as keypoints (the default model)
and as a base layer with each of ``--fusers`` (default: ``detail`` and the default learned
fuser). Each
stream is decoded with the decoder's defaults (in-between and dropped base frames from the
frame interpolator) and with ``inbetween="keypoints"`` (keypoint streams: the generator from
averaged keypoints; base layer streams: dropped frames blended), ``--repeats`` times, all
taking turns; the median time per frame of :meth:`Decoder.decode_stream` is printed with its
ratio to the default keypoint decoder's (the figure issue #19 bounds at 1.5x). Writing the
output video is left out: it is the same for all.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from fomcodec.codec import bitstream as bs
from fomcodec.codec.base_layer import DEFAULT_FUSER, DETAIL_FUSER, BaseLayerSettings
from fomcodec.codec.pipeline import Decoder, Encoder
from fomcodec.eval.metrics import psnr_rgb
from fomcodec.media.video_io import probe_video, read_frames
from fomcodec.zoo import DEFAULT_MODEL

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = REPO.parent / "shared" / "data" / "clips" / "OpenTalker+DPE__d.mp4"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--fusers",
        default=f"{DETAIL_FUSER},{DEFAULT_FUSER}",
        help="comma-separated fusers of the base layer streams",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    fps = Fraction(probe_video(args.clip).fps)
    frames = np.stack(list(read_frames(args.clip, 256, max_frames=args.frames)))
    streams = {f"keypoints ({DEFAULT_MODEL})": Encoder(audio_bit_rate=None)}
    for fuser in args.fusers.split(","):
        name = f"base layer, {fuser}" + (" fuser" if fuser == DETAIL_FUSER else "")
        settings = BaseLayerSettings(fuser=fuser)
        streams[name] = Encoder(base_layer=settings, audio_bit_rate=None)
    coded = {name: bs.pack(enc.encode_frames(iter(frames), fps)) for name, enc in streams.items()}
    data, decoders = {}, {}
    for name, packed in coded.items():
        blended = "averaged keypoints" if name.startswith("keypoints") else "dropped frames blended"
        data[name], decoders[name] = packed, Decoder()
        data[f"{name}, {blended}"] = packed
        decoders[f"{name}, {blended}"] = Decoder(inbetween="keypoints")
    times: dict[str, list[float]] = {name: [] for name in data}
    quality = {}
    for name, decoder in decoders.items():  # warm-up: loads the networks
        out = np.concatenate(list(decoder.decode_stream(bs.unpack(data[name]))))
        quality[name] = float(psnr_rgb(frames, out).mean())
    for _ in range(args.repeats):
        for name, decoder in decoders.items():
            stream = bs.unpack(data[name])
            started = time.perf_counter()
            for _batch in decoder.decode_stream(stream):
                pass
            times[name].append((time.perf_counter() - started) / len(frames))
    print(
        f"clip {args.clip.name}, {len(frames)} frames, {platform.machine()}, "
        f"{args.threads} threads, torch {torch.__version__}, median of {args.repeats}\n"
    )
    print("| stream | kbit/s | PSNR-RGB dB | decode ms/frame | vs keypoints |")
    print("|---|---|---|---|---|")
    reference = statistics.median(next(iter(times.values())))
    seconds = len(frames) / float(fps)
    for name, values in times.items():
        median = statistics.median(values)
        kbps = len(data[name]) * 8 / seconds / 1000
        print(
            f"| {name} | {kbps:.2f} | {quality[name]:.2f} | {median * 1000:.1f} | "
            f"{median / reference:.2f}x |"
        )


if __name__ == "__main__":
    main()
