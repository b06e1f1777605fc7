"""Encoder-side motion refinement: the encoder has the frame it codes, so it can tune the motion
it sends until the frozen decoder reproduces that frame better (nothing in the decoder or the
bitstream changes).

::

    sent motion --+--> render (FOMM: apply_relative_motion + generator;
                  |            lattice warp: the warped source) --> prediction
                  |                                                    |
                  +<------------- Adam on |prediction - frame| <-------+
    per frame: keep the motion whose quantised values score best (the detector's included)
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from fomcodec.codec.motion import apply_relative_motion
from fomcodec.codec.quantization import QuantizationParams, dequantize_motion, quantize_motion
from fomcodec.nets.fomm import FOMM
from fomcodec.nets.keypoint_detector import Keypoints

#: A differentiable decoder for one source image: motion (B entries) -> frames (B, 3, H, W).
Render = Callable[[Keypoints], torch.Tensor]


def fomm_render(
    model: FOMM, source: torch.Tensor, kp_source: Keypoints, scale: float | None = 1.0
) -> Render:
    """The FOMM decoder (fp32) for ``source`` (1, 3, H, W): relative motion applied to
    ``kp_source`` with ``scale``, or absolute keypoints when ``scale`` is None."""
    with torch.no_grad():
        features = model.generator.encode_source(source)

    def render(motion: Keypoints) -> torch.Tensor:
        kp_driving = motion if scale is None else apply_relative_motion(motion, kp_source, scale)
        return model.generator.decode(source, features, kp_driving, kp_source)["prediction"]

    return render


def reconstruction_error(render: Render, motion: Keypoints, frames: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per frame (B,) of what ``render`` makes of ``motion``."""
    return (render(motion).float() - frames).abs().mean(dim=(1, 2, 3))


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
    render: Render,
    motion: Keypoints,
    frames: torch.Tensor,
    steps: int,
    learning_rate: float = 2e-3,
    quantization: QuantizationParams | None = None,
    frozen: torch.nn.Module | None = None,
) -> tuple[Keypoints, torch.Tensor]:
    """Optimise ``motion`` (B frames) so that ``render`` reproduces ``frames`` (B, 3, H, W) in
    [0, 1]; ``frozen``: the network inside ``render``, kept out of autograd meanwhile.

    Every candidate is scored after quantisation, as the decoder will see it, and each frame
    keeps its best, so no frame ends worse than with the given motion on this objective.
    Returns the motion and its per-frame error.
    """
    params = quantization or QuantizationParams()
    with torch.no_grad():
        best = quantised_motion(motion, params)
        best_error = reconstruction_error(render, best, frames)
    if steps <= 0:
        return best, best_error
    value = motion.value.detach().clone().requires_grad_(True)
    jacobian = (
        None if motion.jacobian is None else motion.jacobian.detach().clone().requires_grad_(True)
    )
    optimised = [t for t in (value, jacobian) if t is not None]
    optimizer = torch.optim.Adam(optimised, lr=learning_rate)
    parameters = list(frozen.parameters()) if frozen is not None else []
    requires_grad = [p.requires_grad for p in parameters]
    for parameter in parameters:
        parameter.requires_grad_(False)
    check_every = max(1, steps // 4)
    try:
        for step in range(1, steps + 1):
            error = reconstruction_error(render, Keypoints(value, jacobian), frames)
            optimizer.zero_grad(set_to_none=True)
            error.sum().backward()
            optimizer.step()
            if step % check_every and step != steps:
                continue
            with torch.no_grad():
                candidate = quantised_motion(Keypoints(value, jacobian), params)
                candidate_error = reconstruction_error(render, candidate, frames)
                best, best_error = _keep_better(best, best_error, candidate, candidate_error)
    finally:
        for parameter, flag in zip(parameters, requires_grad, strict=True):
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
