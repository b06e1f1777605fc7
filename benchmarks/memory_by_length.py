"""Peak memory of encode and decode against the clip's length (flat is the goal).

    python benchmarks/memory_by_length.py [--seconds 20,90] [--model fomc-small]

For each length a clip of the public-domain moving head (fomcodec.media.sample_clip, looped,
with a 220 Hz tone as sound) is written at 25 fps, 256x256, then ``fomc encode`` and
``fomc decode`` run each in a fresh process; the peak resident memory of that process
(``ru_maxrss`` of the child) and its time are printed, with the ratio to the shortest clip.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from fomcodec.media.sample_clip import FPS, public_domain_clip


def write_clip(path: Path, seconds: float) -> Path:
    """A looped moving head with a tone, streamed to ``path``."""
    cycle = public_domain_clip(50)
    frames = round(seconds * FPS)
    rate = 48_000
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=FPS, options={"preset": "veryfast"})
        video.width = video.height = cycle.shape[1]
        video.pix_fmt = "yuv420p"
        audio = container.add_stream("aac", rate=rate)
        audio.layout = "mono"
        samples = 0
        for i in range(frames):
            container.mux(video.encode(av.VideoFrame.from_ndarray(cycle[i % len(cycle)], "rgb24")))
            until = round((i + 1) / FPS * rate)
            t = np.arange(samples, until) / rate
            tone = (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, samples, Fraction(1, rate)
            container.mux(audio.encode(frame))
            samples = until
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    return path


_MEASURE = (
    "import resource, subprocess, sys\n"
    "subprocess.run(sys.argv[1:], check=True, capture_output=True)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def run_measured(command: list[str]) -> tuple[float, float]:
    """(peak resident MiB, seconds) of one command, run under a fresh process of its own so
    that no other child's peak is counted."""
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command], check=True, capture_output=True, text=True
    )
    return int(out.stdout.split()[-1]) / 1024, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", default="20,90")
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    lengths = sorted(float(s) for s in args.seconds.split(","))
    model = ["--model", args.model] if args.model else []
    fomc = [sys.executable, "-c", "from fomcodec.cli.main import main; main()"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="fomc-memory-") as folder:
        for seconds in lengths:
            clip = write_clip(Path(folder) / f"clip{seconds:g}.mp4", seconds)
            stream, video = clip.with_suffix(".fomc"), clip.with_suffix(".out.mp4")
            encode = run_measured(
                [*fomc, "encode", str(clip), "-o", str(stream), "-y", "--quiet", *model]
            )
            decode = run_measured(
                [*fomc, "decode", str(stream), "-o", str(video), "-y", "--quiet", *model]
            )
            rows.append((seconds, encode, decode))
            print(
                f"{seconds:g} s: encode {encode[0]:.0f} MiB in {encode[1]:.1f} s, decode "
                f"{decode[0]:.0f} MiB in {decode[1]:.1f} s",
                flush=True,
            )
    base = rows[0]
    print("\n| clip | encode peak MiB | x | encode s | decode peak MiB | x | decode s |")
    print("|---|---|---|---|---|---|---|")
    for seconds, (em, es), (dm, ds) in rows:
        print(
            f"| {seconds:g} s | {em:.0f} | {em / base[1][0]:.2f} | {es:.1f} | {dm:.0f} | "
            f"{dm / base[2][0]:.2f} | {ds:.1f} |"
        )


if __name__ == "__main__":
    main()
