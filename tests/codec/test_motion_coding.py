"""The range-coded motion (MOTA): lossless round trips, closed-loop prediction, fewer bits than
LZMA2 on smooth motion, and robustness against corrupted and truncated payloads (fuzzed)."""

from __future__ import annotations

import contextlib
import dataclasses
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_bitstream import join_chunks, make_stream, split_chunks, streams

from fomcodec.codec import bitstream as bs
from fomcodec.codec.motion_coding import (
    decode_residuals,
    encode_residuals,
    keypoint_groups,
    rest_position,
)
from fomcodec.codec.quantization import quantize_motion
from fomcodec.errors import BitstreamError

FUZZ_EXAMPLES = 2_000  # benchmarks/fuzz_motion.py runs 20,000 more


def ranged(stream: bs.Bitstream) -> bs.Bitstream:
    return dataclasses.replace(stream, motion_coding="range")


@settings(max_examples=150, deadline=None)
@given(streams())
def test_any_stream_round_trips_with_range_coding(stream: bs.Bitstream) -> None:
    stream = ranged(stream)
    data = bs.pack(stream)
    assert data[4] == (3 if stream.keyframes else 2) and b"MOTA" in data
    back = bs.unpack(data)
    assert back.motion_coding == "range"
    np.testing.assert_array_equal(back.motion.values, stream.motion.values)
    if stream.motion.jacobians is None:
        assert back.motion.jacobians is None
    else:
        np.testing.assert_array_equal(back.motion.jacobians, stream.motion.jacobians)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 30), st.integers(1, 6), st.sampled_from([1, 2]), st.integers(1, 8), st.data())
def test_residual_coder_is_lossless_for_every_order_and_rate(
    frames: int, k: int, order: int, shift: int, data: st.DataObject
) -> None:
    channels = data.draw(hnp.arrays(np.int16, (frames, 6 * k)))
    rest = rest_position(6 * k, k, 1000)
    payload = encode_residuals(channels, k, rest, order, shift)
    np.testing.assert_array_equal(decode_residuals(payload, frames, k, rest), channels)


def test_lzma2_streams_keep_the_seed_layout_and_version() -> None:
    stream = make_stream(frame_count=20, k=10)
    data = bs.pack(stream)
    assert data[4] == 1 and [t for t, _ in split_chunks(data)][2] == b"MOTN"
    assert bs.unpack(data).motion_coding == "lzma2"


def test_range_coding_beats_lzma2_on_head_motion() -> None:
    """A head moving (all keypoints together) with a little detector jitter per keypoint."""
    rng = np.random.default_rng(0)
    head = np.cumsum(rng.normal(0, 0.003, (250, 1, 2)), axis=0)
    values = rng.uniform(-0.6, 0.6, (1, 10, 2)) + head + rng.normal(0, 0.0003, (250, 10, 2))
    tilt = np.cumsum(rng.normal(0, 0.003, (250, 1, 2, 2)), axis=0)
    jacobians = np.eye(2) + tilt + rng.normal(0, 0.002, (250, 10, 2, 2))
    motion = quantize_motion(values, jacobians)
    stream = dataclasses.replace(make_stream(frame_count=250, k=10), motion=motion)
    lzma2 = bs.section_sizes(bs.pack(stream))["motion"]
    ranged_size = bs.section_sizes(bs.pack(ranged(stream)))["motion"]
    assert ranged_size < 0.85 * lzma2


def test_in_frame_prediction_pays_for_shared_motion() -> None:
    """Keypoints that move together cost little more than one keypoint moving."""
    rng = np.random.default_rng(0)
    shared = np.cumsum(rng.integers(-20, 21, (200, 1, 2)), axis=0)
    together = np.repeat(shared, 10, axis=1).reshape(200, 20).astype(np.int16)
    apart = np.cumsum(rng.integers(-20, 21, (200, 20)), axis=0).astype(np.int16)
    rest = rest_position(20, 10, 1000)
    assert len(encode_residuals(together, 10, rest)) < 0.3 * len(encode_residuals(apart, 10, rest))


def test_groups_hold_each_keypoints_values_then_jacobian() -> None:
    groups = keypoint_groups(18, 3)
    assert [g.tolist() for g in groups] == [
        [0, 1, 6, 7, 8, 9],
        [2, 3, 10, 11, 12, 13],
        [4, 5, 14, 15, 16, 17],
    ]
    with pytest.raises(ValueError, match="do not fit"):
        keypoint_groups(7, 3)


def test_malformed_payloads_are_bitstream_errors() -> None:
    stream = ranged(make_stream(frame_count=30, k=4))
    chunks = split_chunks(bs.pack(stream))
    payload = chunks[2][1]
    cases = {
        b"": "not params",
        payload[:-1]: "not params",
        b"\x07" + payload[1:]: "coder id",
        payload[:1] + b"\x03" + payload[2:]: "parameters",
        payload[:3]: "no coded data",
        payload + b"\x01\x02\x03\x04": "corrupt",
        payload[:-4]: "corrupt",
        payload[:20] + bytes([payload[20] ^ 4]) + payload[21:]: "corrupt",
    }
    for bad, message in cases.items():
        with pytest.raises(BitstreamError, match=message):
            bs.unpack(join_chunks([*chunks[:2], (b"MOTA", bad), chunks[3]]))


def test_mota_is_refused_in_a_version_1_stream() -> None:
    chunks = split_chunks(bs.pack(ranged(make_stream(frame_count=5, k=2))))
    with pytest.raises(BitstreamError, match="version 1"):
        bs.unpack(join_chunks(chunks, version=1))


@pytest.fixture(scope="module")
def fuzz_base() -> list[tuple[bytes, bytes]]:
    return split_chunks(bs.pack(ranged(make_stream(frame_count=24, k=5))))


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.data())
def test_fuzzed_motion_payloads_decode_or_raise_bitstream_error(
    fuzz_base: list[tuple[bytes, bytes]], data: st.DataObject
) -> None:
    """Mutated MOTA payloads behind a valid CRC (so they reach the range decoder): each one
    decodes to motion of the declared shape or raises BitstreamError, never anything else."""
    payload = bytearray(fuzz_base[2][1])
    mutation = data.draw(st.sampled_from(["flip", "truncate", "extend", "splice"]))
    if mutation == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            position = data.draw(st.integers(0, len(payload) - 1))
            payload[position] ^= data.draw(st.integers(1, 255))
    elif mutation == "truncate":
        payload = payload[: data.draw(st.integers(0, len(payload) - 1))]
    elif mutation == "extend":
        payload += data.draw(st.binary(min_size=1, max_size=64))
    else:
        start = data.draw(st.integers(0, len(payload)))
        payload[start : start + data.draw(st.integers(0, 16))] = data.draw(st.binary(max_size=16))
    stream = None
    with contextlib.suppress(BitstreamError):
        stream = bs.unpack(join_chunks([*fuzz_base[:2], (b"MOTA", bytes(payload)), fuzz_base[3]]))
    if stream is not None:
        assert stream.motion.values.shape == (24, 5, 2)
        assert stream.motion.jacobians.shape == (24, 5, 2, 2)


def test_encoder_writes_range_coding_by_default() -> None:
    from conftest import talking_head_frames
    from test_codec import tiny_model

    from fomcodec.codec.pipeline import Encoder

    model = tiny_model()
    frames = talking_head_frames(6, (256, 256))
    stream = Encoder(model, device="cpu").encode_frames(iter(frames), Fraction(25))
    assert stream.motion_coding == "range" and bs.pack(stream)[4] == 2
    assert stream.header.quantization == bs.DEFAULT_QUANTIZATION["range"]
    seed = Encoder(model, device="cpu", motion_coding="lzma2").encode_frames(
        iter(frames), Fraction(25)
    )
    assert seed.header.quantization == bs.DEFAULT_QUANTIZATION["lzma2"] and bs.pack(seed)[4] == 1
    no_jacobians = Encoder(model, device="cpu", jacobians=False).encode_frames(
        iter(frames), Fraction(25)
    )
    assert not no_jacobians.header.has_jacobians
    smooth = Encoder(model, device="cpu", smoothing=1.0).encode_frames(iter(frames), Fraction(25))
    np.testing.assert_array_equal(smooth.motion.values[0], 0)
