"""Fixed-point quantisation of FOMM keypoints and Jacobians to int16.

::

    float keypoints (T, K, 2)   --x value_scale----> rint --> clip --> int16 (T, K, 2)
    float Jacobians (T, K, 2, 2) --x jacobian_scale-> rint --> clip --> int16 (T, K, 2, 2)

Rounding is round-half-to-even (``np.rint``) of the exact float64 product, which reproduces
the FOMM reference vectors bit for bit. Values outside the int16 range are clipped (never
wrapped) and counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INT16_MIN = -32768
INT16_MAX = 32767
MAX_SCALE = 2**32 - 1


@dataclass(frozen=True)
class QuantizationParams:
    """Fixed-point scales: a float ``x`` is sent as ``rint(x * scale)`` in int16.

    With ``value_scale=10_000`` one step is 1e-4 of the half-width of the frame (keypoints
    live in [-1, 1]); int16 then covers [-3.2768, 3.2767].
    """

    value_scale: int = 10_000
    jacobian_scale: int = 1_000

    def __post_init__(self) -> None:
        for name in ("value_scale", "jacobian_scale"):
            scale = getattr(self, name)
            if isinstance(scale, bool) or not isinstance(scale, int | np.integer):
                raise ValueError(f"{name} must be an int, got {type(scale).__name__}")
            if not 1 <= scale <= MAX_SCALE:
                raise ValueError(f"{name} must be in 1..{MAX_SCALE}, got {scale}")


DEFAULT_PARAMS = QuantizationParams()


@dataclass(eq=False)
class QuantizedMotion:
    """Quantised motion of ``T`` frames and ``K`` keypoints.

    Shape:
        - values: (T, K, 2), int16
        - jacobians: (T, K, 2, 2), int16, or None for models without Jacobians
    """

    values: np.ndarray
    jacobians: np.ndarray | None
    clipped: int = 0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError unless dtypes, shapes and ``clipped`` are consistent."""
        _check_int16("values", self.values, 3)
        if self.jacobians is not None:
            _check_int16("jacobians", self.jacobians, 4)
            _check_matching(self.values.shape, self.jacobians.shape)
        if isinstance(self.clipped, bool) or not isinstance(self.clipped, int | np.integer):
            raise ValueError(f"clipped must be an int, got {type(self.clipped).__name__}")
        if self.clipped < 0:
            raise ValueError(f"clipped must be >= 0, got {self.clipped}")

    @property
    def num_frames(self) -> int:
        """Number of frames ``T``."""
        return int(self.values.shape[0])

    @property
    def num_kp(self) -> int:
        """Number of keypoints ``K``."""
        return int(self.values.shape[1])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QuantizedMotion):
            return NotImplemented
        if (self.jacobians is None) != (other.jacobians is None):
            return False
        same_jac = self.jacobians is None or np.array_equal(self.jacobians, other.jacobians)
        return (
            self.clipped == other.clipped and np.array_equal(self.values, other.values) and same_jac
        )


def _check_int16(name: str, arr: object, ndim: int) -> None:
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(arr).__name__}")
    if arr.dtype != np.int16:
        raise ValueError(f"{name} must be int16, got {arr.dtype}")
    _check_shape(name, arr.shape, ndim)


def _check_shape(name: str, shape: tuple[int, ...], ndim: int) -> None:
    expected = "(T, K, 2)" if ndim == 3 else "(T, K, 2, 2)"
    if len(shape) != ndim or any(s != 2 for s in shape[2:]):
        raise ValueError(f"{name} must have shape {expected}, got {tuple(shape)}")
    if shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"{name} needs at least one frame and one keypoint, got {tuple(shape)}")


def _check_matching(values_shape: tuple[int, ...], jac_shape: tuple[int, ...]) -> None:
    if tuple(jac_shape[:2]) != tuple(values_shape[:2]):
        raise ValueError(
            f"jacobians (T, K) = {tuple(jac_shape[:2])} does not match "
            f"values (T, K) = {tuple(values_shape[:2])}"
        )


def _as_float64(name: str, arr: object, ndim: int) -> np.ndarray:
    try:
        out = np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array: {exc}") from exc
    _check_shape(name, out.shape, ndim)
    if not np.all(np.isfinite(out)):
        bad = int(np.count_nonzero(~np.isfinite(out)))
        raise ValueError(f"{name} holds {bad} NaN or infinite element(s)")
    return out


def _quantize(x: np.ndarray, scale: int) -> tuple[np.ndarray, int]:
    q = np.rint(x * float(scale))
    over = int(np.count_nonzero((q < INT16_MIN) | (q > INT16_MAX)))
    return np.clip(q, INT16_MIN, INT16_MAX).astype(np.int16), over


def quantize_motion(
    values: np.ndarray,
    jacobians: np.ndarray | None,
    params: QuantizationParams = DEFAULT_PARAMS,
) -> QuantizedMotion:
    """Quantise keypoints and Jacobians to int16 (round half to even, clip, count clips).

    Args:
        values: keypoint coordinates, shape (T, K, 2), any float dtype (or array-like).
        jacobians: shape (T, K, 2, 2), or None for a model without Jacobians.
        params: fixed-point scales.

    Returns:
        QuantizedMotion; ``clipped`` counts elements (values and Jacobians together) that were
        outside int16 after scaling and were saturated to -32768 or 32767.

    Raises:
        ValueError: wrong shape, mismatching (T, K), or NaN/inf in the input.

    Example:
        >>> m = quantize_motion(np.zeros((3, 10, 2)), np.zeros((3, 10, 2, 2)))
        >>> m.values.shape, m.values.dtype, m.clipped
        ((3, 10, 2), dtype('int16'), 0)
    """
    v = _as_float64("values", values, 3)
    qv, clipped = _quantize(v, params.value_scale)
    qj = None
    if jacobians is not None:
        j = _as_float64("jacobians", jacobians, 4)
        _check_matching(v.shape, j.shape)
        qj, clipped_j = _quantize(j, params.jacobian_scale)
        clipped += clipped_j
    return QuantizedMotion(values=qv, jacobians=qj, clipped=clipped)


def dequantize_motion(
    motion: QuantizedMotion,
    params: QuantizationParams = DEFAULT_PARAMS,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Map int16 motion back to float32: ``q / scale`` (nearest float32 to the quotient).

    Returns:
        ``(values (T, K, 2), jacobians (T, K, 2, 2) or None)``, both float32.
    """
    if not isinstance(motion, QuantizedMotion):
        raise ValueError(f"motion must be a QuantizedMotion, got {type(motion).__name__}")
    motion.validate()
    values = (motion.values.astype(np.float64) / params.value_scale).astype(np.float32)
    jacobians = None
    if motion.jacobians is not None:
        jacobians = (motion.jacobians.astype(np.float64) / params.jacobian_scale).astype(np.float32)
    return values, jacobians
