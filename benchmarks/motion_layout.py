"""Lossless motion-payload layouts compared under LZMA2 (the table in docs/bitstream.md 4.2).

    python benchmarks/motion_layout.py [--reference ../shared/fomm-reference/tiny-vectors.npz]

Synthetic motion: 10 keypoints at uniform positions in [-0.6, 0.6], a shared smooth head motion
(amplitude 0.05), per-keypoint smooth motion (0.02), per-frame jitter (sigma 0.002); Jacobians
identity + smooth motion (0.1) + jitter (0.01); quantised at the default scales.
"""

from __future__ import annotations

import argparse
import lzma
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def smooth_walk(
    rng: np.random.Generator, frames: int, shape: tuple[int, ...], amplitude: float
) -> np.ndarray:
    walk = np.cumsum(rng.normal(size=(frames, *shape)), axis=0)
    kernel = np.hanning(15)
    kernel /= kernel.sum()
    walk = np.apply_along_axis(lambda s: np.convolve(s, kernel, mode="same"), 0, walk)
    walk -= walk.mean(axis=0)
    return amplitude * walk / (np.abs(walk).max() + 1e-12)


def synthetic_motion(frames: int, num_kp: int = 10, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    values = (
        rng.uniform(-0.6, 0.6, size=(num_kp, 2))
        + smooth_walk(rng, frames, (1, 2), 0.05)
        + smooth_walk(rng, frames, (num_kp, 2), 0.02)
        + rng.normal(0, 0.002, size=(frames, num_kp, 2))
    )
    jacobians = (
        np.eye(2)
        + smooth_walk(rng, frames, (num_kp, 2, 2), 0.1)
        + rng.normal(0, 0.01, size=(frames, num_kp, 2, 2))
    )
    return (np.rint(values * 10000).astype(np.int16), np.rint(jacobians * 1000).astype(np.int16))


def channels(values: np.ndarray, jacobians: np.ndarray, delta: bool) -> np.ndarray:
    """(T, C) int16 time series, optionally as wrapped frame-to-frame differences."""
    frames = values.shape[0]
    series = np.concatenate([values.reshape(frames, -1), jacobians.reshape(frames, -1)], axis=1)
    if delta:
        series = series.copy()
        series[1:] = (series[1:].astype(np.int32) - series[:-1]).astype(np.int16)
    return series


def zigzag(x: np.ndarray) -> np.ndarray:
    signed = x.astype(np.int32)
    return (((signed << 1) ^ (signed >> 15)) & 0xFFFF).astype(np.uint16)


def layouts(series: np.ndarray) -> dict[str, bytes]:
    out = {}
    for zname, arr in (("", series.view(np.uint16)), (" + zigzag", zigzag(series))):
        for lname, a in (("interleaved", arr), ("planar", arr.T)):
            a = np.ascontiguousarray(a).astype("<u2")
            out[lname + zname] = a.tobytes()
            pairs = a.view(np.uint8).reshape(-1, 2)
            out[lname + zname + ", byte planes"] = np.concatenate(
                [pairs[:, 1], pairs[:, 0]]
            ).tobytes()
    return out


def compressed_size(data: bytes) -> int:
    lzma_filter = {
        "id": lzma.FILTER_LZMA2,
        "preset": 9 | lzma.PRESET_EXTREME,
        "dict_size": max(4096, 1 << (len(data) - 1).bit_length()),
    }
    return len(lzma.compress(data, format=lzma.FORMAT_RAW, filters=[lzma_filter]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--reference", type=Path, default=REPO.parent / "shared/fomm-reference/tiny-vectors.npz"
    )
    args = parser.parse_args()
    cases = {f"synthetic T={t}": synthetic_motion(t) for t in (50, 250, 1000)}
    if args.reference.is_file():
        vectors = np.load(args.reference)
        cases["reference T=4"] = (
            vectors["q_kp_driving_value_int16"],
            vectors["q_kp_driving_jacobian_int16"],
        )
    for name, (values, jacobians) in cases.items():
        raw = channels(values, jacobians, delta=False)
        print(
            f"== {name}: raw {raw.nbytes} B; no delta: interleaved "
            f"{compressed_size(raw.tobytes())}, planar {compressed_size(raw.T.copy().tobytes())}"
        )
        for layout, data in layouts(channels(values, jacobians, delta=True)).items():
            print(f"  delta, {layout:38s} {compressed_size(data):7d}")


if __name__ == "__main__":
    main()
