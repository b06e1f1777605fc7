"""Encoder-side motion refinement: the encoder has the frame it codes, so it can tune the motion
it sends until the frozen decoder reproduces that frame better (nothing in the decoder or the
bitstream changes).

::

    detector motion --+--> apply_relative_motion(kp_source) --generator--> prediction
                      |                                                      |
                      +<------------- Adam on |prediction - frame| <---------+
    per frame: keep the motion whose quantised values score best (the detector's included)
"""

from __future__ import annotations

import torch

from fomcodec.codec.motion import apply_relative_motion
from fomcodec.codec.quantization import QuantizationParams, dequantize_motion, quantize_motion
from fomcodec.nets.fomm import FOMM
from fomcodec.nets.keypoint_detector import Keypoints


def reconstruction_error(
    model: FOMM,
    source: torch.Tensor,
    source_features: object,
    kp_source: Keypoints,
    motion: Keypoints,
    frames: torch.Tensor,
    scale: float | None = 1.0,
) -> torch.Tensor:
    """Mean absolute error per frame (B,) of the decoder's output for ``motion``: relative
    motion applied to ``kp_source`` with ``scale``, or absolute keypoints when ``scale`` is
    None."""
    kp_driving = motion if scale is None else apply_relative_motion(motion, kp_source, scale)
    prediction = model.generator.decode(source, source_features, kp_driving, kp_source)
    return (prediction["prediction"].float() - frames).abs().mean(dim=(1, 2, 3))


def quantised_motion(motion: Keypoints, params: QuantizationParams) -> Keypoints:
    """``motion`` as the decoder will see it: quantised to int16 and back."""
    jacobian = None if motion.jacobian is None else motion.jacobian.detach().cpu().numpy()
    quantized = quantize_motion(motion.value.detach().cpu().numpy(), jacobian, params)
    values, jacobians = dequantize_motion(quantized, params)
    return Keypoints(
        torch.from_numpy(values).to(motion.value),
        None if jacobians is None else torch.from_numpy(jacobians).to(motion.value),
    )


def refine_motion(
    model: FOMM,
    source: torch.Tensor,
    kp_source: Keypoints,
    motion: Keypoints,
    frames: torch.Tensor,
    steps: int,
    learning_rate: float = 2e-3,
    quantization: QuantizationParams | None = None,
    scale: float | None = 1.0,
) -> tuple[Keypoints, torch.Tensor]:
    """Optimise ``motion`` (B frames; relative unless ``scale`` is None, as in
    :func:`reconstruction_error`) so the frozen decoder reproduces ``frames``.

    ``source`` is the decoded source image (1, 3, H, W) and ``frames`` the targets (B, 3, H, W)
    in [0, 1]. Every candidate is scored after quantisation, as the decoder will see it, and
    each frame keeps its best, so no frame ends worse than with the detector's motion on this
    objective. Returns the motion and its per-frame error.
    """
    params = quantization or QuantizationParams()
    with torch.no_grad():
        features = model.generator.encode_source(source)
        best = quantised_motion(motion, params)
        best_error = reconstruction_error(model, source, features, kp_source, best, frames, scale)
    if steps <= 0:
        return best, best_error
    value = motion.value.detach().clone().requires_grad_(True)
    jacobian = (
        None if motion.jacobian is None else motion.jacobian.detach().clone().requires_grad_(True)
    )
    optimised = [t for t in (value, jacobian) if t is not None]
    optimizer = torch.optim.Adam(optimised, lr=learning_rate)
    requires_grad = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    check_every = max(1, steps // 4)
    try:
        for step in range(1, steps + 1):
            error = reconstruction_error(
                model, source, features, kp_source, Keypoints(value, jacobian), frames, scale
            )
            optimizer.zero_grad(set_to_none=True)
            error.sum().backward()
            optimizer.step()
            if step % check_every and step != steps:
                continue
            with torch.no_grad():
                candidate = quantised_motion(Keypoints(value, jacobian), params)
                candidate_error = reconstruction_error(
                    model, source, features, kp_source, candidate, frames, scale
                )
                best, best_error = _keep_better(best, best_error, candidate, candidate_error)
    finally:
        for parameter, flag in zip(model.parameters(), requires_grad, strict=True):
            parameter.requires_grad_(flag)
    return best, best_error


def _keep_better(
    best: Keypoints, best_error: torch.Tensor, candidate: Keypoints, candidate_error: torch.Tensor
) -> tuple[Keypoints, torch.Tensor]:
    """Per frame, the motion with the lower error."""
    better = candidate_error < best_error
    value = torch.where(better.view(-1, 1, 1), candidate.value, best.value)
    jacobian = (
        None
        if best.jacobian is None
        else torch.where(better.view(-1, 1, 1, 1), candidate.jacobian, best.jacobian)
    )
    return Keypoints(value, jacobian), torch.minimum(best_error, candidate_error)
