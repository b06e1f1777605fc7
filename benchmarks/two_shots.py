"""Two people back to back in one 16:9 clip: shot cuts, per-shot crop and keyframes.

    python benchmarks/two_shots.py [--frames 100] [--model fomc-warp] [--quality Q]
        [--first CLIP] [--second CLIP]

Two held-out clips (people no model saw in training) are placed, one after the other, at
different positions of a 640x360 frame, as a news programme cuts from one speaker to the
next. The clip is encoded with ``--crop auto`` the way ``fomc encode`` does it (one crop box
per shot, a keyframe at the cut) and decoded; each shot is scored against its own crop of the
input, next to repeating that shot's first frame and to coding the shot alone.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import av
import numpy as np

from fomcodec.codec import bitstream as bs
from fomcodec.codec.image_codec import DEFAULT_QUALITY
from fomcodec.codec.pipeline import Decoder, Encoder
from fomcodec.eval.metrics import psnr_rgb
from fomcodec.media.crop import CropSchedule
from fomcodec.media.face_crop import find_crop_schedule
from fomcodec.media.video_io import read_frames
from fomcodec.zoo import DEFAULT_MODEL, load_model

REPO = Path(__file__).resolve().parents[1]
CLIPS = REPO.parent / "shared" / "data" / "clips"
WIDTH, HEIGHT, SIDE = 640, 360, 300
PLACES = ((40, 30), (300, 30))


def write_two_shots(first: Path, second: Path, frames: int, dst: Path) -> list[int]:
    """Write the composite clip; returns the frame where each shot starts."""
    starts = []
    with av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "16"}
        written = 0
        for clip, (x, y) in zip((first, second), PLACES, strict=True):
            starts.append(written)
            for frame in read_frames(clip, SIDE, max_frames=frames):
                canvas = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
                canvas[y : y + SIDE, x : x + SIDE] = frame
                for packet in stream.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                    out.mux(packet)
                written += 1
        for packet in stream.encode():
            out.mux(packet)
    return starts


def score(reference: np.ndarray, decoded: np.ndarray) -> float:
    return float(psnr_rgb(reference[1:], decoded[1:]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100, help="frames per shot")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--quality", type=int, default=DEFAULT_QUALITY, help="source images")
    parser.add_argument("--first", default="OpenTalker+DPE__d.mp4")
    parser.add_argument("--second", default="harlanhong+CVPR2022-DaGAN__driving.mp4")
    args = parser.parse_args()
    model = load_model(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "two_shots.mp4"
        true_starts = write_two_shots(CLIPS / args.first, CLIPS / args.second, args.frames, clip)
        schedule = find_crop_schedule(clip)
        print(f"shots at {true_starts}; crop: {schedule}")
        encoder = Encoder(model, audio_bit_rate=None, image_quality=args.quality)
        stats = encoder.encode_file(clip, Path(tmp) / "clip.fomc", crop=schedule)
        stream = bs.load(Path(tmp) / "clip.fomc")
        decoded = np.concatenate(list(Decoder(model).decode_stream(stream)))
        reference = np.stack(list(read_frames(clip, crop=schedule)))
        keyframes = [0, *(k.frame for k in stream.keyframes)]
        print(f"{stats.summary()}\nkeyframes at {keyframes}")
        rows = []
        bounds = [*true_starts, len(reference)]
        for shot, (start, end) in enumerate(zip(bounds, bounds[1:], strict=False)):
            ref = reference[start:end]
            box = schedule.box_at(start) if isinstance(schedule, CropSchedule) else schedule
            alone = encoder.encode_frames(iter(ref), stream.header.fps)
            alone_decoded = np.concatenate(list(Decoder(model).decode_stream(alone)))
            rows.append(
                {
                    "shot": shot + 1,
                    "crop": str(box),
                    "in_clip": score(ref, decoded[start:end]),
                    "coded_alone": score(ref, alone_decoded),
                    "repeat_first_frame": score(ref, np.repeat(ref[:1], len(ref), 0)),
                }
            )
    print("| shot | crop | PSNR in the clip | coded alone | repeat its first frame |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['shot']} | {r['crop']} | {r['in_clip']:.2f} | {r['coded_alone']:.2f} | "
            f"{r['repeat_first_frame']:.2f} |"
        )
    print(json.dumps({"keyframes": keyframes, "shots": rows}))


if __name__ == "__main__":
    main()
