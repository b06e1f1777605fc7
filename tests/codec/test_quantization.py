from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fomcodec.codec.quantization import (
    QuantizationParams,
    QuantizedMotion,
    dequantize_motion,
    quantize_motion,
)

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "fomm-reference" / "tiny-vectors.npz"


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    if not REFERENCE.is_file():
        pytest.skip(f"FOMM reference vectors not found at {REFERENCE} (../shared is absent)")
    with np.load(REFERENCE) as npz:
        return {k: npz[k] for k in npz.files if "kp_driving" in k}


class TestSmoke:
    def test_shapes_and_dtypes(self) -> None:
        rng = np.random.default_rng(0)
        m = quantize_motion(rng.uniform(-1, 1, (5, 10, 2)), rng.normal(size=(5, 10, 2, 2)))
        assert m.values.shape == (5, 10, 2) and m.values.dtype == np.int16
        assert m.jacobians is not None
        assert m.jacobians.shape == (5, 10, 2, 2) and m.jacobians.dtype == np.int16
        assert (m.num_frames, m.num_kp, m.clipped) == (5, 10, 0)

    def test_without_jacobians(self) -> None:
        m = quantize_motion(np.zeros((2, 3, 2), np.float32), None)
        assert m.jacobians is None
        values, jac = dequantize_motion(m)
        assert jac is None and values.dtype == np.float32 and values.shape == (2, 3, 2)

    def test_accepts_array_likes(self) -> None:
        m = quantize_motion([[[0.5, -0.25]]], None)
        assert m.values.tolist() == [[[5000, -2500]]]

    def test_default_scales(self) -> None:
        p = QuantizationParams()
        assert (p.value_scale, p.jacobian_scale) == (10_000, 1_000)


class TestWrongInput:
    @pytest.mark.parametrize("shape", [(4, 10, 3), (10, 2), (4, 10, 2, 1), (0, 10, 2), (4, 0, 2)])
    def test_bad_value_shape(self, shape: tuple[int, ...]) -> None:
        with pytest.raises(ValueError, match="values"):
            quantize_motion(np.zeros(shape), None)

    @pytest.mark.parametrize("shape", [(4, 10, 2), (4, 10, 2, 3), (3, 10, 2, 2), (4, 9, 2, 2)])
    def test_bad_jacobian_shape(self, shape: tuple[int, ...]) -> None:
        with pytest.raises(ValueError, match="jacobians"):
            quantize_motion(np.zeros((4, 10, 2)), np.zeros(shape))

    @pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
    @pytest.mark.parametrize("where", ["values", "jacobians"])
    def test_non_finite_raises(self, bad: float, where: str) -> None:
        v, j = np.zeros((2, 3, 2)), np.zeros((2, 3, 2, 2))
        if where == "values":
            v[1, 2, 0] = bad
        else:
            j[1, 2, 0, 1] = bad
        with pytest.raises(ValueError, match=f"{where} holds 1 NaN or infinite"):
            quantize_motion(v, j)

    def test_non_numeric_raises(self) -> None:
        with pytest.raises(ValueError, match="numeric"):
            quantize_motion(np.full((1, 1, 2), "a"), None)

    @pytest.mark.parametrize("scale", [0, -1, 2**32, 1.5, True, "10"])
    def test_bad_scale(self, scale: object) -> None:
        with pytest.raises(ValueError, match="value_scale"):
            QuantizationParams(value_scale=scale)  # type: ignore[arg-type]

    def test_quantized_motion_checks_dtype_and_shapes(self) -> None:
        with pytest.raises(ValueError, match="int16"):
            QuantizedMotion(np.zeros((1, 2, 2), np.int32), None)
        with pytest.raises(ValueError, match="does not match"):
            QuantizedMotion(np.zeros((1, 2, 2), np.int16), np.zeros((2, 2, 2, 2), np.int16))
        with pytest.raises(ValueError, match="clipped"):
            QuantizedMotion(np.zeros((1, 2, 2), np.int16), None, clipped=-1)

    def test_dequantize_rejects_other_types(self) -> None:
        with pytest.raises(ValueError, match="QuantizedMotion"):
            dequantize_motion((np.zeros((1, 1, 2), np.int16), None))  # type: ignore[arg-type]


class TestNumerics:
    def test_matches_reference_vectors(self, reference: dict[str, np.ndarray]) -> None:
        m = quantize_motion(reference["kp_driving_value"], reference["kp_driving_jacobian"])
        np.testing.assert_array_equal(m.values, reference["q_kp_driving_value_int16"])
        np.testing.assert_array_equal(m.jacobians, reference["q_kp_driving_jacobian_int16"])
        assert m.clipped == 0

    def test_round_half_to_even(self) -> None:
        m = quantize_motion(
            np.array([[[0.5, 1.5], [2.5, -0.5], [-1.5, -2.5]]]), None, QuantizationParams(1, 1)
        )
        assert m.values.tolist() == [[[0, 2], [2, 0], [-2, -2]]]

    def test_rounds_the_exact_product(self) -> None:
        # float32 0.64755 is 0.647549986..., so x10,000 is 6475.4999 -> 6475; a float32
        # product would first round to the tie 6475.5 and then to even 6476.
        v = np.array([[[0.64755, -0.88525003]]], np.float32)
        assert np.rint(v * np.float32(10_000)).tolist() == [[[6476.0, -8852.0]]]
        assert quantize_motion(v, None).values.tolist() == [[[6475, -8853]]]

    def test_clipping_is_counted_not_wrapped(self) -> None:
        v = np.array([[[3.5, -3.3], [3.2767, -3.2768]]])
        j = np.zeros((1, 2, 2, 2))
        j[0, 0, 0, 0] = 40.0
        m = quantize_motion(v, j)
        assert m.values.tolist() == [[[32767, -32768], [32767, -32768]]]
        assert m.jacobians is not None and m.jacobians[0, 0, 0, 0] == 32767
        assert m.clipped == 3

    def test_dequantize_inverts_quantize_exactly_on_grid(self) -> None:
        q = np.arange(-32768, 32768, 7, dtype=np.int16)[:9360].reshape(468, 10, 2)
        values, _ = dequantize_motion(QuantizedMotion(q, None))
        again = quantize_motion(values, None)
        np.testing.assert_array_equal(again.values, q)

    @settings(max_examples=150, deadline=None)
    @given(
        hnp.arrays(np.float64, (3, 4, 2), elements=st.floats(-3.2, 3.2)),
        hnp.arrays(np.float64, (3, 4, 2, 2), elements=st.floats(-32.0, 32.0)),
        st.sampled_from([QuantizationParams(), QuantizationParams(1000, 100)]),
    )
    def test_round_trip_error_within_half_step(
        self, v: np.ndarray, j: np.ndarray, params: QuantizationParams
    ) -> None:
        m = quantize_motion(v, j, params)
        assert m.clipped == 0
        dv, dj = dequantize_motion(m, params)
        assert dv.dtype == np.float32 and dj is not None and dj.dtype == np.float32
        assert np.all(np.abs(dv - v) <= 0.5 / params.value_scale + 1e-6)
        assert np.all(np.abs(dj - j) <= 0.5 / params.jacobian_scale + 1e-5)
