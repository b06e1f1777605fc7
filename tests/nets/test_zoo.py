"""Model registry and weights files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml

from fomcodec.errors import ModelError
from fomcodec.nets.config import ModelConfig
from fomcodec.zoo import (
    DEFAULT_MODEL,
    build_model,
    get_config,
    load_model,
    registered_models,
    save_weights,
    weights_hash,
)


def test_registry_lists_the_shipped_configs() -> None:
    models = registered_models()
    assert {"vox-256", "tiny-256", DEFAULT_MODEL} <= set(models)
    assert get_config("vox-256").generator.dense_motion.max_features == 1024


def test_config_yaml_round_trip(tmp_path: Path) -> None:
    config = get_config("fomc-warp")
    path = tmp_path / "copy.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    again = ModelConfig.from_yaml(path)
    assert again == config


def test_safetensors_round_trip_keeps_config_and_hash(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(get_config("tiny-256"))
    first = load_model(save_weights(model, tmp_path / "a.safetensors"))
    second = load_model(save_weights(first, tmp_path / "b.safetensors"))
    assert first.model_name == "tiny-256"
    assert first.weights_hash == second.weights_hash
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors", "b.safetensors"]
    for key, tensor in model.state_dict().items():  # fp16 storage is close to fp32
        torch.testing.assert_close(first.state_dict()[key], tensor, atol=2e-3, rtol=1e-3)


def test_hash_changes_with_any_weight() -> None:
    torch.manual_seed(0)
    model = build_model(get_config("tiny-256"))
    before = weights_hash(model)
    with torch.no_grad():
        model.generator.final.bias[0] += 1e-3
    assert weights_hash(model) != before


def test_unknown_names_and_bad_files_are_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown model"):
        load_model("no-such-model")
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "missing.safetensors")
    garbage = tmp_path / "garbage.pth.tar"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot read"):
        load_model(garbage, config="tiny-256")
    with pytest.raises(ModelError, match="no trained weights"):
        load_model("vox-256")


def test_weights_for_another_architecture_are_refused(tmp_path: Path) -> None:
    model = build_model(get_config("tiny-256"))
    path = save_weights(model, tmp_path / "tiny.safetensors")
    with pytest.raises(ModelError, match="does not fit"):
        load_model(path, config="fomc-warp")
    with pytest.raises(ModelError, match="lattice warp: it has no weights"):
        load_model(path, config="fomc-lattice")
