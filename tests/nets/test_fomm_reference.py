"""Our FOMM against the authors' implementation: state_dict layout and reference vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fomcodec.codec.motion import normalize_keypoints
from fomcodec.nets.keypoint_detector import Keypoints
from fomcodec.zoo import build_model, get_config, load_model, read_checkpoint

KP_TOL = 1e-5
FRAME_TOL = 1e-4


def _reference_list(path: Path) -> dict[str, tuple[str, str, str]]:
    entries = {}
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, shape, dtype, kind = line.split("\t")
        entries[name] = (shape, dtype, kind)
    return entries


@pytest.fixture(scope="module")
def reference_dir(shared_dir: Path) -> Path:
    folder = shared_dir / "fomm-reference"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found: FOMM reference vectors are not available")
    return folder


@pytest.fixture(scope="module")
def vectors(reference_dir: Path) -> dict[str, np.ndarray]:
    return dict(np.load(reference_dir / "tiny-vectors.npz"))


@pytest.fixture(scope="module")
def tiny_model(reference_dir: Path):
    return load_model(reference_dir / "tiny-cpk.pth.tar", config="tiny-256")


def _t(vectors: dict[str, np.ndarray], key: str) -> torch.Tensor:
    return torch.from_numpy(vectors[key])


def test_vox256_state_dict_matches_the_official_list(reference_dir: Path) -> None:
    reference = {
        k: v
        for k, v in _reference_list(reference_dir / "vox256_state_dict.txt").items()
        if k.startswith(("kp_detector.", "generator."))
    }
    model = build_model(get_config("vox-256"))
    params = {name for name, _ in model.named_parameters()}
    ours = {
        name: (
            str(tuple(t.shape)),
            str(t.dtype).removeprefix("torch."),
            "param" if name in params else "buffer",
        )
        for name, t in model.state_dict().items()
    }
    assert sorted(ours) == sorted(reference)
    mismatched = {k: (ours[k], reference[k]) for k in reference if ours[k] != reference[k]}
    assert not mismatched
    assert sum(p.numel() for p in model.kp_detector.parameters()) == 14_215_368
    assert sum(p.numel() for p in model.generator.parameters()) == 45_575_391
    dense = model.generator.dense_motion_network
    assert sum(p.numel() for p in dense.parameters()) == 37_730_268


def test_keypoint_detector_matches_reference(tiny_model, vectors) -> None:
    with torch.no_grad():
        down, features = tiny_model.kp_detector.features(_t(vectors, "source"))
        logits = tiny_model.kp_detector.kp(features)
        kp_source = tiny_model.kp_detector(_t(vectors, "source"))
        kp_driving = tiny_model.kp_detector(_t(vectors, "driving"))
    torch.testing.assert_close(down, _t(vectors, "kp_down_source"), atol=KP_TOL, rtol=0)
    torch.testing.assert_close(features, _t(vectors, "kp_feature_map_source"), atol=1e-4, rtol=0)
    torch.testing.assert_close(logits, _t(vectors, "kp_heatmap_logits_source"), atol=1e-4, rtol=0)
    for kp, name in ((kp_source, "source"), (kp_driving, "driving")):
        torch.testing.assert_close(kp.value, _t(vectors, f"kp_{name}_value"), atol=KP_TOL, rtol=0)
        torch.testing.assert_close(
            kp.jacobian, _t(vectors, f"kp_{name}_jacobian"), atol=KP_TOL, rtol=0
        )


@pytest.mark.parametrize(
    ("mode", "options"),
    [
        ("rel", {}),
        ("rel_adapt", {"adapt_movement_scale": True}),
        ("abs", {"use_relative_movement": False}),
    ],
)
def test_normalisation_and_generator_match_reference(tiny_model, vectors, mode, options) -> None:
    kp_source = Keypoints(_t(vectors, "kp_source_value"), _t(vectors, "kp_source_jacobian"))
    kp_driving = Keypoints(_t(vectors, "kp_driving_value"), _t(vectors, "kp_driving_jacobian"))
    kp_norm = normalize_keypoints(kp_source, kp_driving, kp_driving[0], **options)
    torch.testing.assert_close(
        kp_norm.value, _t(vectors, f"kp_norm_{mode}_value"), atol=KP_TOL, rtol=0
    )
    torch.testing.assert_close(
        kp_norm.jacobian, _t(vectors, f"kp_norm_{mode}_jacobian"), atol=KP_TOL, rtol=0
    )
    source = _t(vectors, "source")
    with torch.no_grad():
        out = tiny_model.generator(
            source.expand(4, -1, -1, -1),
            kp_norm,
            Keypoints(kp_source.value.expand(4, -1, -1), kp_source.jacobian.expand(4, -1, -1, -1)),
        )
        # The codec's path: source features computed once and broadcast over the batch.
        cached = tiny_model.generator.decode(
            source, tiny_model.generator.encode_source(source), kp_norm, kp_source
        )
    torch.testing.assert_close(
        out["prediction"], _t(vectors, f"gen_{mode}_prediction"), atol=FRAME_TOL, rtol=0
    )
    torch.testing.assert_close(
        cached["prediction"], _t(vectors, f"gen_{mode}_prediction"), atol=FRAME_TOL, rtol=0
    )
    if mode != "rel_adapt":
        for key in ("occlusion_map", "mask", "deformation"):
            torch.testing.assert_close(
                out[key], _t(vectors, f"gen_{mode}_{key}"), atol=FRAME_TOL, rtol=0
            )


def test_align_corners_is_an_explicit_option(reference_dir, vectors) -> None:
    config = get_config("tiny-256")
    config.align_corners = True
    model = load_model(reference_dir / "tiny-cpk.pth.tar", config=config)
    kp_source = Keypoints(_t(vectors, "kp_source_value"), _t(vectors, "kp_source_jacobian"))
    kp_driving = Keypoints(_t(vectors, "kp_norm_abs_value"), _t(vectors, "kp_norm_abs_jacobian"))
    source = _t(vectors, "source")
    with torch.no_grad():
        out = model.generator.decode(
            source, model.generator.encode_source(source), kp_driving, kp_source
        )["prediction"]
    difference = (out - _t(vectors, "gen_abs_prediction")).abs().max().item()
    assert difference > 10 * FRAME_TOL
    assert get_config("vox-256").align_corners is True


def test_official_checkpoint_layout_loads_with_prefix_and_extra_keys(
    reference_dir, tmp_path, vectors
) -> None:
    original = torch.load(reference_dir / "tiny-cpk.pth.tar", map_location="cpu", weights_only=True)
    wrapped = {
        "kp_detector": {f"module.{k}": v for k, v in original["kp_detector"].items()},
        "generator": {f"module.{k}": v for k, v in original["generator"].items()},
        "discriminator": {"module.discs.1.conv.bias": torch.zeros(1)},
        "optimizer_generator": {"state": {}},
        "epoch": 99,
    }
    path = tmp_path / "wrapped-cpk.pth.tar"
    torch.save(wrapped, path)
    state = read_checkpoint(path)
    assert not any(k.startswith("discriminator") or "module." in k for k in state)
    model = load_model(path, config="tiny-256")
    with torch.no_grad():
        kp = model.kp_detector(_t(vectors, "source"))
    torch.testing.assert_close(kp.value, _t(vectors, "kp_source_value"), atol=KP_TOL, rtol=0)


def test_discriminator_matches_the_official_list(reference_dir: Path) -> None:
    from fomcodec.nets.discriminator import DiscriminatorConfig, MultiScaleDiscriminator

    reference = {
        k.removeprefix("discriminator."): v
        for k, v in _reference_list(reference_dir / "vox256_state_dict.txt").items()
        if k.startswith("discriminator.")
    }
    disc = MultiScaleDiscriminator(DiscriminatorConfig(scales=[1]))
    params = {name for name, _ in disc.named_parameters()}
    ours = {
        name: (
            str(tuple(t.shape)),
            str(t.dtype).removeprefix("torch."),
            "param" if name in params else "buffer",
        )
        for name, t in disc.state_dict().items()
    }
    assert ours == reference
