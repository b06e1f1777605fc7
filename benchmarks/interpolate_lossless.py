"""`fomc interpolate --lossless` end to end on half-rate held-out clips, against averaging.

    python benchmarks/interpolate_lossless.py [--frames 101] [--interpolator ffi-flow]

For each validation clip (people not used in training; centre-square 256x256, the first
``--frames`` frames): its even frames are written as a lossless half-rate video, the command
``fomc interpolate --lossless`` (run as a user runs it, in a subprocess) doubles its frame
rate, and the frames it made are compared with the dropped real frames (PSNR, RGB), next to
the average of their two neighbours. Issue #17's bar: at least 1.6 dB above averaging.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from fomcodec.eval.metrics import psnr_rgb
from fomcodec.media.video_io import VideoOutput, probe_video, read_frames, read_whole_frames

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--frames", type=int, default=101, help="odd: the clip ends on a kept frame"
    )
    parser.add_argument("--interpolator", default=None, help="NAME|PATH (default: fomc's)")
    parser.add_argument("--split", type=Path, default=REPO / "models/splits/shared-data-v1.json")
    parser.add_argument("--clips", type=Path, default=REPO.parent / "shared/data/clips")
    args = parser.parse_args()
    names = json.loads(args.split.read_text())["validation"]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            frames = np.stack(list(read_frames(args.clips / name, 256, max_frames=args.frames)))
            frames = frames[: len(frames) - (1 - len(frames) % 2)]  # odd count
            half = Path(folder) / "half.mkv"
            doubled = Path(folder) / "doubled.mkv"
            fps = probe_video(args.clips / name).fps
            with VideoOutput(lossless=True).writer(half, fps / 2, overwrite=True) as writer:
                writer.write(frames[0::2])
            command = ["fomc", "interpolate", str(half), "-o", str(doubled), "--lossless", "-y"]
            if args.interpolator:
                command += ["--interpolator", args.interpolator]
            subprocess.run(command, check=True, capture_output=True)
            out = np.stack([f for _, f in read_whole_frames(doubled)])
            made, real = out[1 : len(frames) : 2], frames[1::2]
            average = ((frames[0:-1:2].astype(np.uint16) + frames[2::2] + 1) // 2).astype(np.uint8)
            kept_exact = bool(np.array_equal(out[0 : len(frames) : 2], frames[0::2]))
            rows.append(
                (name, psnr_rgb(real, made), psnr_rgb(real, average), kept_exact, len(real))
            )
            print(f"{name}: {rows[-1][1].mean():.2f} dB, averaging {rows[-1][2].mean():.2f} dB")
    ours = np.concatenate([r[1] for r in rows]).mean()
    average = np.concatenate([r[2] for r in rows]).mean()
    print(f"\n`{' '.join(['python', *sys.argv])}`\n")
    print(
        "| clip | frames made | fomc interpolate --lossless dB | averaging dB | kept frames exact |"
    )
    print("|---|---|---|---|---|")
    for name, made, averaged, exact, count in rows:
        print(f"| {name} | {count} | {made.mean():.2f} | {averaged.mean():.2f} | {exact} |")
    print(f"| **all** | {sum(r[4] for r in rows)} | **{ours:.2f}** | {average:.2f} | |")
    print(f"\nmargin over averaging: {ours - average:+.2f} dB (issue #17's bar: +1.6)")


if __name__ == "__main__":
    main()
