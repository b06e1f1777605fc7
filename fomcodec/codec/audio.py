"""Sound: a clip's audio as low-rate Opus (PyAV's libopus) and back, lined up with its video.

::

    input audio --decode--> resample (48 kHz, mono, s16) --timeline--> libopus (~12 kbit/s)
      timeline: sample 0 is the first video frame's time; audio that starts later is preceded
      by silence, audio before it is dropped, and exactly ``duration * 48000`` samples are coded
    packets + OpusHead + length  -->  bitstream.AudioTrack  (the ancillary ``opus`` chunk)
    AudioTrack --libopus decode--> PCM chunks (pre-skip removed, cut to the coded length)

Everything streams: a chunk of samples at a time, whatever the clip's length.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import av
import numpy as np

from fomcodec.codec.bitstream import AudioTrack
from fomcodec.errors import FomcError, InputError

SAMPLE_RATE = 48_000
DEFAULT_AUDIO_BITRATE = 12_000


def _encoder(bit_rate: int) -> av.AudioCodecContext:
    context = av.CodecContext.create("libopus", "w")
    context.sample_rate = SAMPLE_RATE
    context.layout = "mono"
    context.format = "s16"
    context.bit_rate = bit_rate
    context.options = {"application": "voip"}
    context.open()
    return context


def _input_samples(path: str | os.PathLike, start: float) -> Iterator[np.ndarray]:
    """The file's first audio stream as 48 kHz mono int16 chunks, timed from ``start``."""
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise InputError(f"cannot read audio of {path}: {exc}") from None
    with container:
        streams = container.streams.audio
        if not streams:
            return
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        position = None  # samples emitted so far, on the timeline that starts at ``start``
        try:
            for frame in container.decode(streams[0]):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    if position is None:
                        begins = round(((out.time or 0.0) - start) * SAMPLE_RATE)
                        if begins > 0:
                            yield np.zeros(begins, np.int16)
                        elif begins < 0:
                            chunk = chunk[-begins:]
                        position = max(begins, 0)
                    position += len(chunk)
                    yield chunk
        except av.FFmpegError as exc:
            raise InputError(f"cannot decode the audio of {path}: {exc}") from None


def encode_audio(
    path: str | os.PathLike,
    start: float,
    duration: float,
    bit_rate: int = DEFAULT_AUDIO_BITRATE,
) -> AudioTrack | None:
    """The audio of ``path`` from ``start`` (seconds, the first video frame's time) for
    ``duration`` seconds as Opus, silence-padded at the end if the sound stops early; None
    when the file has no audio stream."""
    if bit_rate < 500:
        raise ValueError(f"audio bit rate must be at least 500 bit/s, not {bit_rate}")
    total = round(duration * SAMPLE_RATE)
    with av.open(str(path)) as probe:
        if not probe.streams.audio:
            return None
    encoder = _encoder(bit_rate)
    packets: list[bytes] = []
    written = 0

    def feed(chunk: np.ndarray) -> None:
        nonlocal written
        frame = av.AudioFrame.from_ndarray(chunk[None], format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = written
        written += len(chunk)
        packets.extend(bytes(p) for p in encoder.encode(frame))

    for chunk in _input_samples(path, start):
        chunk = chunk[: total - written]
        if len(chunk):
            feed(np.ascontiguousarray(chunk))
        if written >= total:
            break
    while written < total:
        feed(np.zeros(min(SAMPLE_RATE, total - written), np.int16))
    packets.extend(bytes(p) for p in encoder.encode(None))
    return AudioTrack(
        "opus", SAMPLE_RATE, 1, bit_rate, total, bytes(encoder.extradata or b""), packets
    )


def decode_audio(track: AudioTrack) -> Iterator[np.ndarray]:
    """(channels, n) int16 PCM chunks of ``track``, ``track.samples`` in all."""
    if track.codec != "opus":
        raise FomcError(f"cannot decode {track.codec} audio")
    decoder = av.CodecContext.create("libopus", "r")
    decoder.sample_rate = track.sample_rate
    decoder.layout = "mono" if track.channels == 1 else "stereo"
    decoder.extradata = track.extradata
    left = track.samples
    try:
        for data in track.packets:
            for frame in decoder.decode(av.Packet(data)):
                pcm = frame.to_ndarray()
                if frame.format.name != "s16":
                    pcm = (np.clip(pcm, -1, 1) * 32767).round().astype(np.int16)
                pcm = pcm.reshape(track.channels, -1)[:, :left]
                left -= pcm.shape[1]
                if pcm.shape[1]:
                    yield pcm
                if left <= 0:
                    return
    except av.FFmpegError as exc:
        raise FomcError(f"the stream's audio is corrupt: {exc}") from None
    if left > 0:
        yield np.zeros((track.channels, left), np.int16)


class AudioFeed:
    """Decoded audio handed out up to a time, to interleave with the video being written."""

    def __init__(self, track: AudioTrack) -> None:
        self.sample_rate = track.sample_rate
        self.channels = track.channels
        self._chunks = decode_audio(track)
        self._pending = np.zeros((track.channels, 0), np.int16)
        self.taken = 0

    def until(self, seconds: float | None) -> np.ndarray:
        """The samples from where the last call stopped up to ``seconds`` (None: the end)."""
        target = None if seconds is None else round(seconds * self.sample_rate)
        parts = [self._pending]
        have = self._pending.shape[1]
        while target is None or self.taken + have < target:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            parts.append(chunk)
            have += chunk.shape[1]
        pcm = np.concatenate(parts, axis=1)
        cut = pcm.shape[1] if target is None else max(0, min(pcm.shape[1], target - self.taken))
        out, self._pending = pcm[:, :cut], pcm[:, cut:]
        self.taken += cut
        return out
