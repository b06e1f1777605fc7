"""Fuzz the range-coded motion decoder: mutated MOTA payloads behind valid CRCs.

    python benchmarks/fuzz_motion.py [--count 20000] [--seed 0]

Each stream is a real encoder's range-coded motion (25 motion frames, 10 keypoints with
Jacobians) with one mutation (bit flips, truncation, extension or a spliced run of random
bytes) and its chunk CRC recomputed, so the mutation reaches the range decoder. Every stream
must decode to motion of the declared shape or raise BitstreamError; anything else (another
exception, a hang) fails. Prints the counts and the slowest decode.
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
import zlib
from fractions import Fraction

import numpy as np

from fomcodec.codec import bitstream as bs
from fomcodec.codec.quantization import QuantizationParams, quantize_motion
from fomcodec.errors import BitstreamError


def base_stream(rng: np.random.Generator, frames: int = 25, k: int = 10) -> bs.Bitstream:
    head = np.cumsum(rng.normal(0, 0.004, (frames, 1, 2)), axis=0)
    values = head + rng.normal(0, 0.001, (frames, k, 2))
    jacobians = np.eye(2) + rng.normal(0, 0.02, (frames, k, 2, 2))
    params = bs.DEFAULT_QUANTIZATION["range"]
    motion = quantize_motion(values - values[:1], jacobians, params)
    header = bs.StreamHeader(
        width=256,
        height=256,
        fps=Fraction(25),
        frame_count=frames,
        model_name="fuzz",
        weights_hash=bytes(8),
        num_kp=k,
        quantization=QuantizationParams(params.value_scale, params.jacobian_scale),
    )
    return bs.Bitstream(header, [bs.EncodedImage("av1", b"\x00" * 32)], motion, "range")


def chunk(tag: bytes, payload: bytes) -> bytes:
    head = tag + struct.pack("<I", len(payload))
    return head + payload + struct.pack("<I", zlib.crc32(head + payload))


def mutate(payload: bytes, rng: np.random.Generator) -> bytes:
    data = bytearray(payload)
    kind = rng.integers(4)
    if kind == 0:
        for _ in range(rng.integers(1, 9)):
            data[rng.integers(len(data))] ^= int(rng.integers(1, 256))
    elif kind == 1:
        data = data[: rng.integers(len(data))]
    elif kind == 2:
        data += rng.bytes(int(rng.integers(1, 65)))
    else:
        start = int(rng.integers(len(data) + 1))
        data[start : start + int(rng.integers(17))] = rng.bytes(int(rng.integers(17)))
    return bytes(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    decoded = rejected = 0
    slowest = 0.0
    failures: list[str] = []
    for i in range(args.count):
        if i % 500 == 0:
            stream = base_stream(rng)
            packed = bs.pack(stream)
            prefix = packed[:5] + chunk(b"HEAD", bs._pack_header(stream.header))
            prefix += chunk(b"SIMG", bytes([bs.IMAGE_CODEC_IDS["av1"]]) + b"\x00" * 32)
            payload = bs.encode_motion_range(stream.motion, stream.header)
            assert prefix + chunk(b"MOTA", payload) + chunk(b"END ", b"") == packed
        data = prefix + chunk(b"MOTA", mutate(payload, rng)) + chunk(b"END ", b"")
        started = time.perf_counter()
        try:
            back = bs.unpack(data)
            assert back.motion.values.shape == stream.motion.values.shape
            decoded += 1
        except BitstreamError:
            rejected += 1
        except Exception as exc:  # noqa: BLE001 - anything else is the failure we look for
            failures.append(f"{type(exc).__name__}: {exc}")
        slowest = max(slowest, time.perf_counter() - started)
    print(
        f"{args.count} mutated streams: {rejected} rejected with BitstreamError, "
        f"{decoded} decoded (mutations that leave a valid stream), {len(failures)} other "
        f"outcomes; slowest decode {slowest * 1000:.1f} ms"
    )
    for failure in failures[:10]:
        print("  ", failure)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
