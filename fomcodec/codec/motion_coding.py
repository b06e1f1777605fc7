"""Model-based entropy coding of the quantised motion (the ``MOTA`` chunk).

::

    int16 motion (T, C)  [C = K*2 keypoint values, then K*4 Jacobian entries]
      per frame t, channel c:
        temporal   p = x[t-1]            (order 1; x[-1] = the rest position)
                     = 2 x[t-1] - x[t-2] (order 2, from t = 2 on)
                   d = x - p
      per keypoint k = 0..K-1 (its 2 values and 4 Jacobian entries, in that order):
        in-frame   q = rint(median of d over keypoints 0..k-1, entry by entry)  (q = 0 for k = 0)
        residual   r = wrap16(d - q)     (exactly invertible)
        model      Laplace(0, b_c), b_c = max(MIN_SCALE, m_c / 16), quantised to integers
      after each frame, both sides:
        m_c <- m_c + floor((16 min(|r_c|, CAP) - m_c) / 2**shift)      (integer arithmetic)
      --> constriction's range coder (queue), 32-bit words, little-endian

Keypoints move together (the head), so the median of the keypoints already coded in a frame
predicts the next one's motion: 12 % fewer bits than the temporal prediction alone.

The prediction and the scale use only what the decoder has already decoded, so the coder is
closed-loop: nothing drifts. Residuals are lossless; quantisation (and the encoder's choice of
values, e.g. smoothing) happens before. The decoder re-codes what it decoded and requires the
same bytes, so corruption that still decodes to numbers is caught (the chunk CRC catches it
first). The layout is specified in ``docs/bitstream.md``.
"""

from __future__ import annotations

import struct

import constriction
import numpy as np

from fomcodec.errors import BitstreamError

CODER_LAPLACE_RANGE = 1
MIN_SCALE = 0.1
SCALE_UNIT = 16
RESIDUAL_CAP = 4096
INITIAL_STATE = 2 * SCALE_UNIT
DEFAULT_ORDER = 1
DEFAULT_SHIFT = 3
_PARAMS = struct.Struct("<BBB")
_MODEL = constriction.stream.model.QuantizedLaplace(-32768, 32767)


def _wrap16(x: np.ndarray) -> np.ndarray:
    return ((x + 32768) & 0xFFFF) - 32768


def rest_position(channels: int, num_kp: int, jacobian_scale: int) -> np.ndarray:
    """Where motion starts (int64, C): keypoints at 0, Jacobians the identity (as quantised,
    clipped to int16)."""
    rest = np.zeros(channels, np.int64)
    if channels > 2 * num_kp:
        eye = np.tile(np.array([1, 0, 0, 1], np.int64) * min(jacobian_scale, 32767), num_kp)
        rest[2 * num_kp :] = eye
    return rest


class _Predictor:
    """The closed-loop state both sides keep: last two frames and each channel's scale."""

    def __init__(self, rest: np.ndarray, order: int, shift: int) -> None:
        self.previous = rest.copy()
        self.before = rest.copy()
        self.order = order
        self.shift = shift
        self.state = np.full(rest.shape, INITIAL_STATE, np.int64)
        self.frames = 0

    def prediction(self) -> np.ndarray:
        if self.order == 2 and self.frames >= 2:
            return np.clip(2 * self.previous - self.before, -32768, 32767)
        return self.previous

    def scales(self) -> np.ndarray:
        return np.maximum(MIN_SCALE, self.state / SCALE_UNIT).astype(np.float64)

    def update(self, frame: np.ndarray, residual: np.ndarray) -> None:
        magnitude = np.minimum(np.abs(residual), RESIDUAL_CAP) * SCALE_UNIT
        self.state += (magnitude - self.state) >> self.shift
        self.before, self.previous = self.previous, frame
        self.frames += 1


def keypoint_groups(channels: int, num_kp: int) -> list[np.ndarray]:
    """Channel indices of each keypoint: its 2 values, then its 4 Jacobian entries if any."""
    if channels not in (2 * num_kp, 6 * num_kp):
        raise ValueError(f"{channels} channels do not fit {num_kp} keypoints")
    jacobians = channels == 6 * num_kp
    return [
        np.array(
            [2 * k, 2 * k + 1] + ([2 * num_kp + 4 * k + e for e in range(4)] if jacobians else [])
        )
        for k in range(num_kp)
    ]


def _in_frame_prediction(done: list[np.ndarray]) -> np.ndarray | int:
    return 0 if not done else np.rint(np.median(np.stack(done), axis=0)).astype(np.int64)


def encode_residuals(
    channels: np.ndarray,
    num_kp: int,
    rest: np.ndarray,
    order: int = DEFAULT_ORDER,
    shift: int = DEFAULT_SHIFT,
) -> bytes:
    """Code (T, C) int16 motion; returns the ``MOTA`` payload."""
    if order not in (1, 2) or not 1 <= shift <= 8:
        raise ValueError(f"order must be 1 or 2 and shift 1..8, got {order}, {shift}")
    frames = channels.astype(np.int64)
    groups = keypoint_groups(frames.shape[1], num_kp)
    predictor = _Predictor(rest, order, shift)
    encoder = constriction.stream.queue.RangeEncoder()
    zeros = np.zeros(len(groups[0]), np.float64)
    residual = np.empty(frames.shape[1], np.int64)
    for frame in frames:
        change = _wrap16(frame - predictor.prediction())
        scales = predictor.scales()
        done: list[np.ndarray] = []
        for group in groups:
            residual[group] = _wrap16(change[group] - _in_frame_prediction(done))
            encoder.encode(residual[group].astype(np.int32), _MODEL, zeros, scales[group])
            done.append(change[group])
        predictor.update(frame, residual)
    words = encoder.get_compressed().astype("<u4").tobytes()
    return _PARAMS.pack(CODER_LAPLACE_RANGE, order, shift) + words


def decode_residuals(payload: bytes, frame_count: int, num_kp: int, rest: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_residuals`: (T, C) int16; BitstreamError if malformed."""
    if len(payload) < _PARAMS.size or (len(payload) - _PARAMS.size) % 4:
        raise BitstreamError(f"MOTA payload of {len(payload)} bytes is not params + 32-bit words")
    coder, order, shift = _PARAMS.unpack_from(payload)
    if coder != CODER_LAPLACE_RANGE:
        raise BitstreamError(f"unknown motion coder id {coder}")
    if order not in (1, 2) or not 1 <= shift <= 8:
        raise BitstreamError(f"invalid motion coder parameters: order {order}, shift {shift}")
    words = np.frombuffer(payload, "<u4", offset=_PARAMS.size).astype(np.uint32)
    if frame_count and not len(words):
        raise BitstreamError("MOTA payload holds no coded data")
    decoder = constriction.stream.queue.RangeDecoder(words)
    groups = keypoint_groups(rest.shape[0], num_kp)
    predictor = _Predictor(rest, order, shift)
    zeros = np.zeros(len(groups[0]), np.float64)
    out = np.empty((frame_count, rest.shape[0]), np.int16)
    residual = np.empty(rest.shape[0], np.int64)
    change = np.empty(rest.shape[0], np.int64)
    for t in range(frame_count):
        scales = predictor.scales()
        done: list[np.ndarray] = []
        for group in groups:
            try:
                residual[group] = decoder.decode(_MODEL, zeros, scales[group])
            except (AssertionError, ValueError, RuntimeError, OverflowError) as exc:
                # constriction reports data no model could have produced this way
                raise BitstreamError(f"MOTA payload is corrupt at motion frame {t}: {exc}") from exc
            change[group] = _wrap16(residual[group] + _in_frame_prediction(done))
            done.append(change[group])
        frame = _wrap16(predictor.prediction() + change)
        out[t] = frame
        predictor.update(frame, residual)
    # The encoder is deterministic, so a payload it wrote is the one its motion codes to: this
    # catches data beyond the declared frames and corruption that still decodes to numbers.
    if encode_residuals(out, num_kp, rest, order, shift) != bytes(payload):
        raise BitstreamError("MOTA payload is corrupt (it is not what its motion codes to)")
    return out
