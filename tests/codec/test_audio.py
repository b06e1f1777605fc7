"""Sound: Opus in the stream, AAC in the decoded file, lined up with the video."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import talking_head_frame
from test_bitstream import join_chunks, split_chunks
from test_codec import tiny_model

from fomcodec.codec import bitstream as bs
from fomcodec.codec.audio import SAMPLE_RATE, decode_audio, encode_audio
from fomcodec.codec.pipeline import Decoder, Encoder
from fomcodec.errors import BitstreamError

FPS = 25
BURSTS = (0.40, 1.00, 1.62)  # seconds from the first video frame


def _write_clip(path: Path, frames: int, audio_delay: float = 0.0) -> Path:
    """H.264 frames plus AAC audio: 50 ms bursts of a 1 kHz tone at BURSTS, the audio stream
    starting ``audio_delay`` seconds after the video."""
    rate = 48_000
    t = np.arange(round(frames / FPS * rate)) / rate
    pcm = np.zeros_like(t)
    for at in BURSTS:
        on = (t >= at) & (t < at + 0.05)
        pcm[on] = 0.5 * np.sin(2 * np.pi * 1000 * t[on])
    pcm = pcm[round(audio_delay * rate) :]
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=FPS, options={"preset": "veryfast"})
        video.width = video.height = 128
        video.pix_fmt = "yuv420p"
        audio = container.add_stream("aac", rate=rate)
        audio.layout = "mono"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(talking_head_frame(i, 128, 128), "rgb24")
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        first = round(audio_delay * rate)
        for start in range(0, len(pcm), 1024):
            chunk = pcm[start : start + 1024].astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            frame.sample_rate = rate
            frame.pts = first + start
            frame.time_base = Fraction(1, rate)
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    return path


def _read_audio(path: Path) -> tuple[np.ndarray, int, float, float]:
    """Mono float samples from the first video frame's time, their rate, and the audio and
    video durations in seconds."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        times = [f.time for f in container.decode(video)]
        video_duration = len(times) / float(video.average_rate)
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        chunks, start = [], None
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                start = out.time if start is None else start
                chunks.append(out.to_ndarray().reshape(-1))
    pcm = np.concatenate(chunks)
    offset = round(((start or 0.0) - times[0]) * SAMPLE_RATE)
    pcm = np.concatenate([np.zeros(max(offset, 0)), pcm[max(-offset, 0) :]])
    return pcm, SAMPLE_RATE, len(pcm) / SAMPLE_RATE, video_duration


def _onsets(pcm: np.ndarray, rate: int) -> list[float]:
    envelope = np.convolve(np.abs(pcm), np.ones(48) / 48, mode="same")
    loud = envelope > 0.25 * envelope.max()
    rises = np.flatnonzero(loud[1:] & ~loud[:-1]) + 1
    merged = [r for i, r in enumerate(rises) if i == 0 or r - rises[i - 1] > rate // 10]
    return [r / rate for r in merged]


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.mark.parametrize("delay", [0.0, 0.2])
def test_sound_comes_back_in_sync(model, tmp_path: Path, delay: float) -> None:
    clip = _write_clip(tmp_path / "in.mp4", 50, audio_delay=delay)
    fomc, out = tmp_path / "clip.fomc", tmp_path / "out.mp4"
    Encoder(model, device="cpu").encode_file(clip, fomc)
    stream = bs.load(fomc)
    assert stream.audio is not None and stream.audio.codec == "opus"
    assert stream.audio.samples == 2 * SAMPLE_RATE  # 50 frames at 25 fps
    assert stream.sizes["audio"] > 0
    stats = Decoder(model, device="cpu", bf16=False).decode_file(stream, out)
    assert stats.sizes["audio"] == stream.sizes["audio"]
    pcm, rate, audio_seconds, video_seconds = _read_audio(out)
    assert abs(audio_seconds - video_seconds) <= 1 / FPS
    onsets = _onsets(pcm, rate)
    assert len(onsets) == len(BURSTS)
    assert max(abs(a - b) for a, b in zip(onsets, BURSTS, strict=True)) < 0.020
    if delay:
        assert np.abs(pcm[: int(0.15 * rate)]).max() < 0.02  # silence before the audio began


def test_audio_can_be_left_out_both_ways(model, tmp_path: Path) -> None:
    clip = _write_clip(tmp_path / "in.mp4", 25)
    silent, with_sound = tmp_path / "silent.fomc", tmp_path / "sound.fomc"
    Encoder(model, device="cpu", audio_bit_rate=None).encode_file(clip, silent)
    assert bs.load(silent).audio is None and b"opus" not in silent.read_bytes()
    Encoder(model, device="cpu").encode_file(clip, with_sound)
    out = tmp_path / "out.mp4"
    Decoder(model, device="cpu", audio=False).decode_file(with_sound, out)
    with av.open(str(out)) as container:
        assert not container.streams.audio


def test_a_clip_without_sound_has_no_audio_chunk(model, tmp_path: Path) -> None:
    from conftest import synthetic_talking_head

    clip = synthetic_talking_head(tmp_path / "mute.mp4", frames=10)
    assert encode_audio(clip, 0.0, 0.4) is None
    fomc = tmp_path / "mute.fomc"
    Encoder(model, device="cpu").encode_file(clip, fomc)
    assert bs.load(fomc).audio is None


def test_decoded_audio_has_exactly_the_coded_length(tmp_path: Path) -> None:
    clip = _write_clip(tmp_path / "in.mp4", 30)
    track = encode_audio(clip, 0.0, 1.2, bit_rate=8000)
    assert track.samples == round(1.2 * SAMPLE_RATE)
    assert sum(chunk.shape[1] for chunk in decode_audio(track)) == track.samples
    assert len(bs._pack_audio(track)) < 1.2 * 8000 / 8 * 1.5  # about the asked rate


def test_damaged_audio_chunks_are_format_errors(model, tmp_path: Path) -> None:
    clip = _write_clip(tmp_path / "in.mp4", 25)
    stream = Encoder(model, device="cpu").encode_frames(
        (talking_head_frame(i, 256, 256) for i in range(25)), Fraction(FPS)
    )
    stream = dataclasses.replace(stream, audio=encode_audio(clip, 0.0, 1.0))
    chunks = split_chunks(bs.pack(stream))
    tags = [t for t, _ in chunks]
    audio = chunks[tags.index(b"opus")][1]
    for bad, match in [
        (audio[:10], "shorter"),
        (audio[:-3], "cut short"),
        (b"\x09" + audio[1:], "codec id"),
        (audio[:3] + b"\x00" + audio[4:], "sample rate"),
    ]:
        damaged = [(t, bad if t == b"opus" else p) for t, p in chunks]
        with pytest.raises(BitstreamError, match=match):
            bs.unpack(join_chunks(damaged))
    twice = chunks[:-1] + [chunks[tags.index(b"opus")], chunks[-1]]
    with pytest.raises(BitstreamError, match="more than one"):
        bs.unpack(join_chunks(twice))
