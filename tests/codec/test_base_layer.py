"""The AV1 base layer: coding, the BASE chunk, fusion with the source image, the CLI."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import struct
import zlib
from fractions import Fraction
from pathlib import Path

import hypothesis
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import talking_head_frames
from hypothesis import strategies as st

from fomcodec.cli.main import main
from fomcodec.codec import bitstream as bs
from fomcodec.codec.base_layer import BaseLayerSettings
from fomcodec.codec.base_video import (
    BaseLayerWriter,
    fill_dropped,
    segment_divisor,
    segment_psnr,
    trial_code,
    upscaled_frames,
)
from fomcodec.codec.fusion import to_uint8
from fomcodec.codec.pipeline import Decoder, Encoder
from fomcodec.errors import BitstreamError
from fomcodec.eval.metrics import psnr_rgb

SETTINGS = BaseLayerSettings(size=64, crf=40, fps_divisor=2, fuser="detail")


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return talking_head_frames(21, (256, 256))


@pytest.fixture(scope="module")
def stream(frames: np.ndarray) -> bs.Bitstream:
    encoder = Encoder(base_layer=SETTINGS, audio_bit_rate=None)
    return encoder.encode_frames(iter(frames), Fraction(25))


def test_stream_carries_a_base_layer_instead_of_motion(stream: bs.Bitstream) -> None:
    assert stream.version == 4 and stream.motion is None
    layer = stream.base
    assert (layer.width, layer.height, layer.fps_divisor) == (64, 64, 2)
    assert layer.frame_count == 11  # frames 0, 2, ..., 20
    again = bs.unpack(bs.pack(stream))
    assert again.base == layer and again.header == stream.header
    sizes = bs.section_sizes(bs.pack(stream))
    assert sizes["motion"] == 0 and sizes["base"] == len(bs._pack_base(layer))


def test_fused_frames_beat_the_upscaled_base(frames: np.ndarray, stream: bs.Bitstream) -> None:
    decoded = np.concatenate(list(Decoder().decode_stream(stream)))
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    header = stream.header
    upscaled = upscaled_frames(stream.base, header.frame_count, header.width, header.height)
    base = np.stack([np.clip(f + 0.5, 0, 255).astype(np.uint8) for f in upscaled])
    assert psnr_rgb(frames, decoded).mean() > psnr_rgb(frames, base).mean() + 0.5


def test_dropped_base_frames_come_from_the_interpolator(
    frames: np.ndarray, stream: bs.Bitstream
) -> None:
    interpolated = np.concatenate(list(Decoder(device="cpu").decode_stream(stream)))
    blended = np.concatenate(
        list(Decoder(device="cpu", inbetween="keypoints").decode_stream(stream))
    )
    coded = np.arange(len(frames)) % SETTINGS.fps_divisor == 0
    # the coded frames are fused alike; the dropped ones are made, not blended, and closer
    np.testing.assert_array_equal(interpolated[coded], blended[coded])
    assert not np.array_equal(interpolated[~coded], blended[~coded])
    ours = psnr_rgb(frames[~coded], interpolated[~coded]).mean()
    assert ours > psnr_rgb(frames[~coded], blended[~coded]).mean()


def test_eighth_rate_base_layer_interpolates_seven_frames_of_eight(frames: np.ndarray) -> None:
    settings = dataclasses.replace(SETTINGS, fps_divisor=8)
    stream = Encoder(base_layer=settings, audio_bit_rate=None).encode_frames(
        iter(frames[:17]), Fraction(25)
    )
    assert stream.base.frame_count == 3  # frames 0, 8 and 16
    interpolated = np.concatenate(list(Decoder(device="cpu").decode_stream(stream)))
    blended = np.concatenate(
        list(Decoder(device="cpu", inbetween="keypoints").decode_stream(stream))
    )
    assert interpolated.shape == blended.shape == frames[:17].shape
    dropped = np.arange(17) % 8 != 0
    np.testing.assert_array_equal(interpolated[~dropped], blended[~dropped])
    pairs = zip(interpolated[dropped], blended[dropped], strict=True)
    assert all(not np.array_equal(ours, blend) for ours, blend in pairs)


def test_full_rate_base_layer_loads_no_interpolator(frames: np.ndarray) -> None:
    full_rate = dataclasses.replace(SETTINGS, fps_divisor=1)
    stream = Encoder(base_layer=full_rate, audio_bit_rate=None).encode_frames(
        iter(frames[:4]), Fraction(25)
    )
    # nothing is dropped, so the (here unloadable) interpolator is never asked for
    decoder = Decoder(device="cpu", interpolator="no-such-interpolator")
    assert not decoder.uses_interpolator(stream)
    assert np.concatenate(list(decoder.decode_stream(stream))).shape == frames[:4].shape


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="SVT-AV1 raises threads to real-time only for root",
)
def test_av1_encoding_leaves_no_thread_real_time(frames: np.ndarray) -> None:
    from fomcodec.eval.baselines import BaselineConfig, encode_decode

    def realtime_threads() -> list[int]:
        tasks = [int(task) for task in os.listdir("/proc/self/task")]
        return [t for t in tasks if os.sched_getscheduler(t) in (os.SCHED_FIFO, os.SCHED_RR)]

    assert realtime_threads() == []
    writer = BaseLayerWriter(SETTINGS, Fraction(25), 256)
    for frame in frames[:4]:
        writer.add(frame)
    assert writer.finish().frame_count == 2
    encode_decode(frames[:4], 25, BaselineConfig("av1", 50, 64))
    assert realtime_threads() == []


def test_fill_dropped_blends_between_and_holds_after() -> None:
    given = [np.full((2, 2, 3), v, np.uint8) for v in (0, 90, 30)]
    out = [float(f[0, 0, 0]) for f in fill_dropped(given, range(0, 9, 3), 9)]
    assert out == [0, 30, 60, 90, 70, 50, 30, 30, 30]


def test_fill_dropped_follows_uneven_gaps() -> None:
    given = [np.full((2, 2, 3), v, np.uint8) for v in (0, 40, 50, 90)]
    out = [float(f[0, 0, 0]) for f in fill_dropped(given, [0, 4, 5, 7], 9)]
    assert out == [0, 10, 20, 30, 40, 50, 70, 90, 90]


def test_cut_starts_a_source_image() -> None:
    first = talking_head_frames(12, (256, 256))
    second = 255 - talking_head_frames(12, (256, 256))[:, ::-1]
    encoder = Encoder(base_layer=SETTINGS, audio_bit_rate=None)
    stream = encoder.encode_frames(iter(np.concatenate([first, second])), Fraction(25))
    assert [k.frame for k in stream.keyframes] == [12]
    decoded = np.concatenate(list(Decoder().decode_stream(bs.unpack(bs.pack(stream)))))
    assert psnr_rgb(second, decoded[12:]).mean() > 20


def _rechunk(data: bytes, tag: bytes, payload: bytes) -> bytes:
    """``data`` with chunk ``tag``'s payload replaced (and its CRC made right)."""
    pos = data.index(tag)
    (length,) = struct.unpack_from("<I", data, pos + 4)
    head = tag + struct.pack("<I", len(payload))
    crc = struct.pack("<I", zlib.crc32(payload, zlib.crc32(head)))
    return data[:pos] + head + payload + crc + data[pos + 12 + length :]


def test_base_layer_damage_is_a_format_error(stream: bs.Bitstream) -> None:
    data = bs.pack(stream)
    payload = bs._pack_base(stream.base)
    pos = data.index(b"BASE") + 8
    flipped = data[: pos + 40] + bytes([data[pos + 40] ^ 0xFF]) + data[pos + 41 :]
    with pytest.raises(BitstreamError, match="CRC"):
        bs.unpack(flipped)
    with pytest.raises(BitstreamError, match="cut short"):
        bs.unpack(_rechunk(data, b"BASE", payload[:-5]))
    with pytest.raises(BitstreamError, match="fuser id"):
        bs.unpack(_rechunk(data, b"BASE", payload[:1] + b"\x09" + payload[2:]))
    few = dataclasses.replace(stream.base, frame_count=5)
    with pytest.raises(BitstreamError, match="5 frames"):
        bs.unpack(_rechunk(data, b"BASE", bs._pack_base(few)))
    with pytest.raises(BitstreamError, match="BASE chunk in a version 3"):
        bs.unpack(data[:4] + b"\x03" + data[5:])


def test_packets_that_decode_to_too_few_frames_fail_clearly(stream: bs.Bitstream) -> None:
    short = dataclasses.replace(stream, base=dataclasses.replace(stream.base))
    short.base.packets = short.base.packets[:3]
    with pytest.raises(BitstreamError, match="base layer decodes to"):
        list(Decoder().decode_stream(short))


def still_then_noise() -> np.ndarray:
    """64 frames: still (0-32), then noise (33-63)."""
    still = talking_head_frames(1, (256, 256))[0]
    noise = np.random.default_rng(0).integers(0, 256, (31, 256, 256, 3), dtype=np.uint8)
    return np.concatenate([np.repeat(still[None], 33, 0), noise])


def flat(values: list[int]) -> np.ndarray:
    """Flat grey 32x32 frames of the given values (AV1 codes them almost exactly)."""
    return np.stack([np.full((32, 32, 3), v, np.uint8) for v in values])


def test_trial_code_gives_back_what_the_decoder_sees() -> None:
    frames = talking_head_frames(5, (64, 64))
    coded = trial_code(list(frames), crf=20)
    assert len(coded) == 5 and coded[0].shape == (64, 64, 3)
    assert psnr_rgb(frames, np.stack(coded)).min() > 30
    rough = np.stack(trial_code(list(frames), crf=63))
    assert psnr_rgb(frames, rough).mean() < psnr_rgb(frames, np.stack(coded)).mean()


def test_segment_psnr_measures_what_the_decoder_makes() -> None:
    ramp = flat([8 * i for i in range(9)])
    # a linear change blends (almost) exactly, the next segment's first frame included
    assert segment_psnr(ramp[:8], 4, 20, following=ramp[8]) > 40
    assert segment_divisor(ramp[:8], 8, 40, 20, following=ramp[8]) == 8
    # without the next frame the last coded one is held: frames 5-7 miss by 8, 16, 24
    held = 10 * math.log10(255**2 / ((8**2 + 16**2 + 24**2) / 8))
    assert segment_psnr(ramp[:8], 4, 20) == pytest.approx(held, abs=1)
    assert segment_divisor(ramp[:8], 8, held + 2, 20) == 2
    assert segment_divisor(ramp[:8], 8, 200, 20) == 1
    # a step: blending misses it, an interpolator that holds the first frame makes it
    step = flat([0] * 8 + [100])
    assert segment_psnr(step[:8], 8, 20, following=step[8]) < 20
    hold = segment_psnr(step[:8], 8, 20, following=step[8], synthesize=lambda a, b: a)
    assert hold > 40


def test_adaptive_frame_rate_codes_motion_densely_and_stillness_sparsely() -> None:
    frames = still_then_noise()
    settings = dataclasses.replace(SETTINGS, fps_divisor=8, adapt_db=30)
    stream = Encoder(base_layer=settings, audio_bit_rate=None).encode_frames(
        iter(frames), Fraction(25)
    )
    layer = stream.base
    assert layer.segment_frames == 32 and layer.segment_divisors == (8, 1)
    coded = [0, 8, 16, 24, *range(32, 64)]
    assert list(layer.coded_frames(len(frames))) == coded and layer.frame_count == len(coded)
    for total in (1, 31, 32, 33, 40, 64):
        assert layer.coded_frame_count(total) == len(layer.coded_frames(total))
    assert stream.version == 5 and bs.unpack(bs.pack(stream)).base == layer
    decoder = Decoder(device="cpu")
    assert decoder.uses_interpolator(stream)
    decoded = np.concatenate(list(decoder.decode_stream(stream)))
    assert decoded.shape == frames.shape
    scores = psnr_rgb(frames, decoded)
    # the still start, made from four coded frames, is as good as its coded frames
    assert scores[:33].min() > scores[:33:8].max() - 0.5 and scores[:33].min() > 30


def test_adaptive_frame_rate_needs_a_power_of_two() -> None:
    with pytest.raises(ValueError, match="power-of-two"):
        BaseLayerSettings(fps_divisor=3, adapt_db=30).check(256)
    with pytest.raises(ValueError, match="adapt_db"):
        BaseLayerSettings(adapt_db=0).check(256)


def test_frame_rate_schedule_damage_is_a_format_error() -> None:
    frames = still_then_noise()[:40]
    settings = dataclasses.replace(SETTINGS, fps_divisor=4, adapt_db=30)
    stream = Encoder(base_layer=settings, audio_bit_rate=None).encode_frames(
        iter(frames), Fraction(25)
    )
    layer = stream.base
    data = bs.pack(stream)
    head = bs._BASE_HEAD.size
    payload = bs._pack_base(layer)
    with pytest.raises(BitstreamError, match="schedule cut short"):
        bs.unpack(_rechunk(data, b"BASE", payload[: head + 3]))
    with pytest.raises(BitstreamError, match="without a frame-rate schedule"):
        empty = payload[:head] + struct.pack("<HI", 32, 0) + payload[head + 6 + 2 :]
        bs.unpack(_rechunk(data, b"BASE", empty))
    odd = dataclasses.replace(layer, segment_divisors=(3, layer.segment_divisors[1]))
    with pytest.raises(BitstreamError, match="does not divide"):
        bs.unpack(_rechunk(data, b"BASE", bs._pack_base(odd)))
    one = dataclasses.replace(layer, segment_divisors=layer.segment_divisors[:1])
    with pytest.raises(BitstreamError, match="need one each"):
        bs.unpack(_rechunk(data, b"BASE", bs._pack_base(one)))
    with pytest.raises(BitstreamError, match="BASE chunk in a version 3"):
        bs.unpack(data[:4] + b"\x03" + data[5:])
    # read as version 4, the schedule is taken for packets
    with pytest.raises(BitstreamError):
        bs.unpack(data[:4] + b"\x04" + data[5:])


@pytest.fixture(scope="module")
def adaptive_stream() -> bs.Bitstream:
    settings = dataclasses.replace(SETTINGS, fps_divisor=4, adapt_db=30)
    encoder = Encoder(base_layer=settings, audio_bit_rate=None)
    return encoder.encode_frames(iter(still_then_noise()[:40]), Fraction(25))


@hypothesis.settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)
@hypothesis.given(st.data())
def test_any_schedule_damage_raises_only_bitstream_error(
    adaptive_stream: bs.Bitstream, data: st.DataObject
) -> None:
    data_bytes = bs.pack(adaptive_stream)
    payload = bytearray(bs._pack_base(adaptive_stream.base))
    head = bs._BASE_HEAD.size
    # the schedule (frames per segment, count, divisors) and the first packet length
    position = data.draw(st.integers(head, head + 6 + 2 + 4 - 1))
    payload[position] = data.draw(st.integers(0, 255))
    with contextlib.suppress(BitstreamError):  # anything else escaping fails the test
        again = bs.unpack(_rechunk(data_bytes, b"BASE", bytes(payload)))
        assert len(again.base.segment_divisors) == 2


def test_motion_and_base_layer_do_not_mix(stream: bs.Bitstream) -> None:
    from tests.codec.test_bitstream import make_stream

    mixed = make_stream(frame_count=stream.header.frame_count, k=1, jac=False)
    mixed.base = stream.base
    with pytest.raises(ValueError, match="not both"):
        bs.pack(mixed)
    with pytest.raises(ValueError, match="base size"):
        Encoder(base_layer=BaseLayerSettings(size=63))


def test_cli_encode_info_decode(synthetic_clip: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    fomc, mp4 = tmp_path / "clip.fomc", tmp_path / "clip.mp4"
    args = ["encode", str(synthetic_clip), "-o", str(fomc), "--base-layer", "av1", "--quiet"]
    result = runner.invoke(main, [*args, "--base-size", "48", "--frames", "8", "--no-audio"])
    assert result.exit_code == 0, result.output
    info = json.loads(runner.invoke(main, ["info", str(fomc), "--json"]).output)
    assert info["format_version"] == 4 and info["base_layer"]["width"] == 48
    assert info["sizes"]["base"] > 0 and info["kbps_parts"]["motion"] == 0
    text = runner.invoke(main, ["info", str(fomc)]).output
    assert "base:    av1 48x48" in text and "motion:" not in text
    result = runner.invoke(main, ["decode", str(fomc), "-o", str(mp4), "--quiet"])
    assert result.exit_code == 0, result.output
    from fomcodec.media.video_io import probe_video

    assert probe_video(mp4).frame_count == 8
    bad = runner.invoke(main, [*args[:-1], "-y", "--base-size", "47"])
    assert bad.exit_code == 2 and "even" in bad.output
    odd = runner.invoke(
        main, [*args[:-1], "-y", "--base-fps-divisor", "3", "--base-adapt-db", "30"]
    )
    assert odd.exit_code == 2 and "power-of-two divisor" in odd.output
    adaptive = [*args, "-y", "--no-audio", "--base-adapt-db", "1"]  # any segment passes
    result = runner.invoke(main, [*adaptive, "--base-size", "48", "--base-fps-divisor", "8"])
    assert result.exit_code == 0, result.output
    info = json.loads(runner.invoke(main, ["info", str(fomc), "--json"]).output)
    base = info["base_layer"]
    assert info["format_version"] == 5 and base["segment_frames"] == 32
    assert base["segments_by_divisor"] == {"8": 1} and base["frames"] == 4  # 0, 8, 16, 24
    text = runner.invoke(main, ["info", str(fomc)]).output
    assert "frame rate per segment of 32 frames (every 8th frame in 1)" in text
    result = runner.invoke(main, ["decode", str(fomc), "-o", str(mp4), "-y", "--quiet"])
    assert result.exit_code == 0 and probe_video(mp4).frame_count == 25


def test_rate_ladder_picks_the_richest_rung_that_fits() -> None:
    from fomcodec.codec.base_layer import RATE_LADDER, rate_point

    rates = [point.kbps for point in RATE_LADDER]
    assert len(rates) >= 3 and rates == sorted(rates)
    assert any(p.base is not None for p in RATE_LADDER)
    for point in RATE_LADDER:
        assert rate_point(point.kbps) == point
    assert rate_point(rates[0] / 2) == RATE_LADDER[0]
    assert rate_point(rates[-1] * 10) == RATE_LADDER[-1]
    targets = np.linspace(rates[0], rates[-1] * 2, 50)
    chosen = [rate_point(k).kbps for k in targets]
    assert chosen == sorted(chosen) and all(c <= k for c, k in zip(chosen, targets, strict=True))
    with pytest.raises(ValueError, match="positive"):
        rate_point(0)


def test_cli_kbps_chooses_a_rung_and_refuses_what_it_sets(
    synthetic_clip: Path, tmp_path: Path
) -> None:
    from fomcodec.codec.base_layer import RATE_LADDER

    rung = RATE_LADDER[len(RATE_LADDER) // 2]
    runner = CliRunner()
    fomc = tmp_path / "rate.fomc"
    args = ["encode", str(synthetic_clip), "-o", str(fomc), "--frames", "6", "--no-audio"]
    result = runner.invoke(main, [*args, "--kbps", str(rung.kbps), "--fuser", "detail"])
    assert result.exit_code == 0, result.output
    assert rung.label in result.output
    info = json.loads(runner.invoke(main, ["info", str(fomc), "--json"]).output)
    assert info["base_layer"]["width"] == rung.base.size
    assert info["base_layer"]["fps_divisor"] == rung.base.fps_divisor
    for extra in (["-q", "20"], ["--base-crf", "40"], ["--base-layer", "none"]):
        bad = runner.invoke(main, [*args, "-y", "--kbps", "5", *extra])
        assert bad.exit_code == 2 and "--kbps picks" in bad.output, extra
    assert runner.invoke(main, [*args, "-y", "--kbps", "0"]).exit_code == 2
    cheapest = RATE_LADDER[0]  # below every rung: the cheapest one
    result = runner.invoke(main, [*args, "-y", "--kbps", str(cheapest.kbps / 2)])
    assert result.exit_code == 0 and cheapest.label in result.output, result.output
    info = json.loads(runner.invoke(main, ["info", str(fomc), "--json"]).output)
    assert info["base_layer"]["width"] == cheapest.base.size


# --- learned fusers ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_fuser(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Weights of a tiny fuser whose output layer is not zero (so it differs from 'detail')."""
    import torch

    from fomcodec.nets.fuser import BaseLayerFuser, FuserConfig
    from fomcodec.zoo import save_fuser

    torch.manual_seed(0)
    network = BaseLayerFuser(FuserConfig(name="fuse-tiny", channels=4))
    torch.nn.init.normal_(network.out.weight, std=0.05)
    return save_fuser(network, tmp_path_factory.mktemp("fuser") / "fuse-tiny.safetensors")


def test_learned_fuser_is_named_in_the_stream_and_used(
    frames: np.ndarray, stream: bs.Bitstream, tiny_fuser: Path
) -> None:
    from fomcodec.errors import ModelMismatchError
    from fomcodec.zoo import load_fuser

    settings = dataclasses.replace(SETTINGS, fuser=str(tiny_fuser))
    learned = Encoder(base_layer=settings).encode_frames(iter(frames), Fraction(25))
    network = load_fuser(tiny_fuser)
    assert learned.base.fuser == "learned" and learned.header.model_name == "fuse-tiny"
    assert learned.header.weights_hash == network.weights_hash
    assert learned.base.packets == stream.base.packets  # the fuser changes nothing coded
    out = np.concatenate(list(Decoder(fuser=tiny_fuser).decode_stream(bs.unpack(bs.pack(learned)))))
    detail = np.concatenate(list(Decoder().decode_stream(stream)))
    assert out.shape == detail.shape and not np.array_equal(out, detail)
    with pytest.raises(ModelMismatchError, match="fuser"):
        other = load_fuser(tiny_fuser)
        other.weights_hash = bytes(8)
        list(Decoder(fuser=other).decode_stream(learned))


@pytest.mark.parametrize("unshuffle", [1, 4])
def test_untrained_fuser_is_the_detail_fuser(unshuffle: int) -> None:
    import torch

    from fomcodec.codec.fusion import fuse_batch
    from fomcodec.nets.fuser import BaseLayerFuser, FuserConfig

    rng = np.random.default_rng(0)
    base, warped, low = (rng.uniform(0, 255, (2, 16, 16, 3)).astype(np.float32) for _ in range(3))
    network = BaseLayerFuser(FuserConfig(channels=4, unshuffle=unshuffle)).eval()
    with torch.no_grad():
        learned = fuse_batch(base, warped, low, network)
    assert np.abs(learned.astype(int) - fuse_batch(base, warped, low).astype(int)).max() <= 1


def test_block_fuser_changes_each_block_from_its_own_pixels() -> None:
    """With ``unshuffle`` 4 the network works on 4 x 4 blocks and puts its output back in
    place: a change at one pixel changes the output around that pixel only (its receptive
    field, about 12 blocks), at the input's size."""
    import torch

    from fomcodec.nets.fuser import BaseLayerFuser, FuserConfig

    torch.manual_seed(0)
    network = BaseLayerFuser(FuserConfig(channels=4, unshuffle=4)).eval()
    torch.nn.init.normal_(network.out.weight, std=0.1)
    inputs = [torch.rand(1, 3, 256, 256) for _ in range(3)]
    with torch.no_grad():
        before = network(*inputs)
        inputs[0][..., 128, 128] += 0.5
        after = network(*inputs)
    assert before.shape == (1, 3, 256, 256)
    rows, cols = np.nonzero(((after - before).abs().amax((0, 1)) > 0).numpy())
    assert len(rows) and np.abs(rows - 128).max() <= 64 and np.abs(cols - 128).max() <= 64


@pytest.mark.parametrize("field", ["unshuffle", "flow_scale"])
def test_fuser_config_refuses_other_scales(field: str) -> None:
    from fomcodec.errors import ModelError
    from fomcodec.nets.fuser import FuserConfig

    with pytest.raises(ModelError, match=field):
        FuserConfig(**{field: 3})


@pytest.mark.parametrize("flow_scale", [1, 2])
def test_source_warp_follows_a_moved_head(flow_scale: int) -> None:
    """The source warped onto a frame where the head moved lands where the head is, with
    the flow measured at the full or half size."""
    from fomcodec.codec.fusion import SourceWarp

    source = talking_head_frames(1, (256, 256))[0]
    moved = np.roll(source, (4, -6), axis=(0, 1))
    warp = SourceWarp(source, 128, 128, flow_scale)
    warped, warped_low = warp.warp(moved.astype(np.float32))
    inner = (slice(16, -16), slice(16, -16))
    assert warped.shape == warped_low.shape == source.shape
    still = psnr_rgb(moved[inner][None], source[inner][None])[0]
    assert psnr_rgb(moved[inner][None], to_uint8(warped[inner])[None])[0] > still + 15


def test_parallel_source_warp_matches_one_warp(frames: np.ndarray) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from fomcodec.codec.fusion import ParallelSourceWarp, SourceWarp

    bases = [f.astype(np.float32) for f in frames[1:6]]
    single = SourceWarp(frames[0], 64, 64, 2)
    with ThreadPoolExecutor(2) as pool:
        parallel = ParallelSourceWarp(frames[0], 64, 64, 2, pool, workers=2).warp_batch(bases)
    assert len(parallel) == len(bases)
    for base, (warped, warped_low) in zip(bases, parallel, strict=True):
        expected, expected_low = single.warp(base)
        np.testing.assert_array_equal(warped, expected)
        np.testing.assert_array_equal(warped_low, expected_low)


def test_decoder_measures_flow_as_the_fuser_was_trained(
    frames: np.ndarray, stream: bs.Bitstream, tmp_path: Path
) -> None:
    """A fuser's ``flow_scale`` reaches the decoder: the same weights with flow at half the
    size decode to other (close) frames."""
    from fomcodec.nets.fuser import BaseLayerFuser, FuserConfig
    from fomcodec.zoo import save_fuser

    outputs = []
    for flow_scale in (1, 2):
        network = BaseLayerFuser(FuserConfig(name="fuse-flow", channels=4, flow_scale=flow_scale))
        path = save_fuser(network, tmp_path / f"fuse-flow-{flow_scale}.safetensors")
        settings = dataclasses.replace(SETTINGS, fuser=str(path))
        coded = Encoder(base_layer=settings).encode_frames(iter(frames), Fraction(25))
        outputs.append(np.concatenate(list(Decoder(fuser=path).decode_stream(coded))))
    assert not np.array_equal(*outputs)
    assert psnr_rgb(*outputs).mean() > 35


def test_fuser_training_exports_and_resumes(tmp_path: Path) -> None:
    import random

    from fomcodec.nets.fuser import FuserConfig
    from fomcodec.training.fusion import FuserTrainConfig, FuserTrainer, clip_samples, evaluate
    from fomcodec.zoo import load_fuser

    clip = talking_head_frames(24, (256, 256))
    samples = clip_samples(clip, random.Random(0))
    assert samples.shape == (6, 256, 256, 12) and samples.dtype == np.uint8
    export = tmp_path / "fuse-test.safetensors"
    config = FuserTrainConfig(steps=30, batch_size=4, crop=64, lr=5e-3, validate_every=15)

    def trainer() -> FuserTrainer:
        network = FuserConfig(name="fuse-test", channels=8)
        return FuserTrainer(network, config, samples, samples, tmp_path / "run")

    first = trainer()
    metrics = first.run(export_path=export)
    assert first.step == 30 and load_fuser(export).model_name == "fuse-test"
    assert metrics is not None and np.isfinite(metrics["psnr_detail"])
    # the exported weights are the best validated ones
    assert evaluate(load_fuser(export), samples)[1] == pytest.approx(first.best_psnr, abs=1e-4)
    assert trainer().step == 30  # resumed, nothing left to do
