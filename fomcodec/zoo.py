"""Named models: YAML configs and safetensors weights, loaded by name or path (timm style).

A model is found by name in the model folders (``$FOMC_MODELS_DIR``, then the project's
``models/``): ``NAME.yaml`` holds the config and ``NAME.safetensors`` the weights. A path may
name a ``.yaml``, a ``.safetensors`` file (config in its metadata, or a YAML beside it), or an
official FOMM checkpoint (``vox-cpk.pth.tar``), read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from fomcodec.errors import ModelError
from fomcodec.fileio import atomic_output
from fomcodec.nets.config import ModelConfig
from fomcodec.nets.flow_interpolator import FlowInterpolator, FlowInterpolatorConfig
from fomcodec.nets.fomm import FOMM
from fomcodec.nets.fuser import FUSER_FOLDER, BaseLayerFuser, FuserConfig
from fomcodec.nets.interpolator import (
    INTERPOLATOR_FOLDER,
    FacialFrameInterpolator,
    InterpolatorConfig,
)
from fomcodec.nets.lattice_warp import LatticeWarp, LatticeWarpConfig

DEFAULT_MODEL = "fomc-lattice"
#: What renders a keypoint stream: a FOMM network, or the weightless lattice warp.
MotionModel = FOMM | LatticeWarp
MotionModelConfig = ModelConfig | LatticeWarpConfig
#: Either frame interpolator architecture; both take ``(frame0, frame1)`` and return a dict
#: whose ``frame`` is the middle frame.
Interpolator = FacialFrameInterpolator | FlowInterpolator
InterpolatorConfigs = InterpolatorConfig | FlowInterpolatorConfig
WEIGHTS_HASH_BYTES = 8
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".tar", ".ckpt")


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its config file and, where trained weights ship, their file."""

    name: str
    config_path: Path
    weights_path: Path | None


def shipped_models_dir() -> Path:
    """The folder of the models that ship with fomcodec: ``fomcodec.model_files`` in an
    installed package (a wheel), which is the repository's ``models/`` in a checkout."""
    spec = importlib.util.find_spec("fomcodec.model_files")
    for location in (spec.submodule_search_locations or []) if spec else []:
        if Path(location).is_dir():
            return Path(location)
    return Path(__file__).resolve().parents[1] / "models"


def model_dirs() -> list[Path]:
    """Folders searched for named models, in order: ``$FOMC_MODELS_DIR``, then the shipped
    models."""
    dirs = [Path(p) for p in os.environ.get("FOMC_MODELS_DIR", "").split(os.pathsep) if p]
    dirs.append(shipped_models_dir())
    return [d for d in dirs if d.is_dir()]


def registered_models() -> dict[str, ModelEntry]:
    """Every model found in :func:`model_dirs` (the first folder wins on a name clash)."""
    entries: dict[str, ModelEntry] = {}
    for folder in model_dirs():
        for config_path in sorted(folder.glob("*.yaml")):
            name = config_path.stem
            if name in entries:
                continue
            weights = config_path.with_suffix(".safetensors")
            entries[name] = ModelEntry(name, config_path, weights if weights.is_file() else None)
    return entries


def find_config(name_or_path: str | os.PathLike, folders: list[Path], kind: str) -> Path:
    """The YAML of ``name_or_path``: a path ending in .yaml/.yml, else ``NAME.yaml`` in the
    first of ``folders`` that has it; ModelError naming the known ones otherwise."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ModelError(f"{kind} config {path} not found")
        return path
    for folder in folders:
        if (folder / f"{name_or_path}.yaml").is_file():
            return folder / f"{name_or_path}.yaml"
    known = ", ".join(sorted({p.stem for d in folders for p in d.glob("*.yaml")})) or "none"
    raise ModelError(f"unknown {kind} '{name_or_path}' (known: {known})")


def get_config(name_or_path: str | os.PathLike) -> MotionModelConfig:
    """Config of a registered model name, or read from a YAML path: a lattice warp when the
    file has a ``lattice_warp`` section, else a FOMM."""
    path = find_config(name_or_path, model_dirs(), "model")
    data = _read_yaml(path, "model")
    if isinstance(data, dict) and LatticeWarpConfig.SECTION in data:
        return LatticeWarpConfig.from_dict(data, name=path.stem)
    return ModelConfig.from_yaml(path)


def build_model(config: MotionModelConfig) -> MotionModel:
    """A model with freshly initialised weights (none for a lattice warp), in eval mode."""
    if isinstance(config, LatticeWarpConfig):
        return LatticeWarp(config).eval()
    return FOMM(config).eval()


def weights_hash(model: torch.nn.Module) -> bytes:
    """Truncated SHA-256 of the weights (names, shapes and float32 values; BatchNorm's
    ``num_batches_tracked`` counters excluded) identifying them in a bitstream."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if name.endswith("num_batches_tracked"):
            continue
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.digest()[:WEIGHTS_HASH_BYTES]


def read_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Flat state_dict (``kp_detector.*``, ``generator.*``) from an official FOMM checkpoint:
    a ``module.`` prefix is stripped and everything else (discriminator, optimisers) ignored."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad pickle
        raise ModelError(f"cannot read checkpoint {path}: {exc}".splitlines()[0]) from exc
    if not isinstance(checkpoint, dict) or not {"kp_detector", "generator"} <= checkpoint.keys():
        raise ModelError(f"{path} is not a FOMM checkpoint (no kp_detector/generator entries)")
    state: dict[str, torch.Tensor] = {}
    for part in ("kp_detector", "generator"):
        for key, value in checkpoint[part].items():
            key = key.removeprefix("module.")
            state[f"{part}.{key}"] = value
    return state


def load_weights_into(
    model: FOMM, state: dict[str, torch.Tensor], source: str, partial: bool = False
) -> list[str]:
    """Copy ``state`` into ``model``; every model key must be present with the right shape.

    ``partial`` (starting a new architecture from a sibling's weights) keeps the model's own
    initialisation for the entries ``state`` lacks. Returns the keys that were not loaded.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    if partial:
        own = {k: v for k, v in own.items() if k in state}
    elif missing:
        raise ModelError(
            f"{source} does not fit model '{model.config.name}': "
            f"{len(missing)} missing entries (e.g. {missing[0]})"
        )
    wrong = [k for k in own if tuple(state[k].shape) != tuple(own[k].shape)]
    if wrong:
        k = wrong[0]
        raise ModelError(
            f"{source} does not fit model '{model.config.name}': {k} has shape "
            f"{tuple(state[k].shape)}, expected {tuple(own[k].shape)}"
        )
    model.load_state_dict({k: state[k].to(own[k].dtype) for k in own}, strict=not partial)
    return missing


def save_weights(
    model: torch.nn.Module,
    path: str | os.PathLike,
    half: bool = True,
    extra_metadata: dict[str, str] | None = None,
) -> Path:
    """Write weights as safetensors (float tensors in fp16 if ``half``) with the config in
    the metadata, so the file alone is enough to rebuild the model. ``model.config`` must
    have a ``name`` and ``to_dict()`` (FOMM and the frame interpolator do)."""
    tensors = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        if half and tensor.is_floating_point():
            tensor = tensor.half()
        tensors[name] = tensor
    metadata = {
        "name": model.config.name,
        "format": "fomcodec-fomm",
        "config": yaml.safe_dump(model.config.to_dict(), sort_keys=False),
    }
    metadata.update(extra_metadata or {})
    with atomic_output(path, overwrite=True) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return Path(path)


def read_safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata dict of a safetensors file."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except (SafetensorError, OSError) as exc:
        raise ModelError(f"cannot read weights {path}: {exc}") from exc


def _config_from_safetensors(path: Path) -> ModelConfig:
    beside = path.with_suffix(".yaml")
    if beside.is_file():
        return ModelConfig.from_yaml(beside)
    meta = read_safetensors_metadata(path)
    if "config" not in meta:
        raise ModelError(f"{path} holds no config and has no YAML beside it")
    return ModelConfig.from_dict(yaml.safe_load(meta["config"]), name=meta.get("name") or path.stem)


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise ModelError(f"cannot read weights {path}: {exc}") from exc
    return read_checkpoint(path)


def load_model(
    name_or_path: str | os.PathLike = DEFAULT_MODEL,
    config: str | os.PathLike | MotionModelConfig | None = None,
    device: str | torch.device = "cpu",
    pretrained: bool = True,
) -> MotionModel:
    """Load a model by registered name or path, in eval mode on ``device``.

    ``config`` overrides the architecture (a name, YAML path or config); for an official
    checkpoint it defaults to ``vox-256``. With ``pretrained=False`` a named model is built
    with fresh weights (for tests and speed measurements). A lattice warp has no weights to
    load. The result carries ``model_name`` and ``weights_hash`` attributes.
    """
    path = Path(name_or_path)
    weights: Path | None
    if path.suffix == ".safetensors" or path.suffix in CHECKPOINT_SUFFIXES:
        if not path.is_file():
            raise ModelError(f"weights file {path} not found")
        weights = path
        if config is None:
            config = (
                _config_from_safetensors(path)
                if path.suffix == ".safetensors"
                else get_config("vox-256")
            )
    elif path.suffix in (".yaml", ".yml"):
        if config is None:
            config = get_config(path)
        weights = path.with_suffix(".safetensors")
        weights = weights if weights.is_file() else None
    else:
        entries = registered_models()
        if str(name_or_path) not in entries:
            get_config(name_or_path)  # raises the helpful "unknown model" error
        entry = entries[str(name_or_path)]
        if config is None:
            config = entry.config_path
        weights = entry.weights_path
    if not isinstance(config, MotionModelConfig):
        config = get_config(config)
    model = build_model(config)
    if isinstance(model, LatticeWarp):
        if path.suffix == ".safetensors" or path.suffix in CHECKPOINT_SUFFIXES:
            raise ModelError(f"'{config.name}' is a lattice warp: it has no weights to load")
        model.weights_path = None
        return model.to(device)
    if pretrained:
        if weights is None:
            raise ModelError(
                f"model '{config.name}' has no trained weights here; pass a "
                "weights file with --model (e.g. an official vox-cpk.pth.tar)"
            )
        load_weights_into(model, _read_weights(weights), str(weights))
    model.model_name = config.name
    model.weights_hash = weights_hash(model)
    model.weights_path = weights if pretrained else None
    return model.to(device)


# ------------------------------------------ frame interpolators and fusers (same registry)


def family_dirs(folder: str) -> list[Path]:
    """Folders searched for a network family kept in a subfolder of each model folder
    (``interpolators/``, ``fusers/``)."""
    return [d / folder for d in model_dirs() if (d / folder).is_dir()]


def interpolator_dirs() -> list[Path]:
    """Folders searched for named interpolators: ``interpolators/`` inside each model folder."""
    return family_dirs(INTERPOLATOR_FOLDER)


#: Each interpolator architecture: its config class and the network it builds.
_INTERPOLATOR_NETWORKS: dict[type, type] = {
    InterpolatorConfig: FacialFrameInterpolator,
    FlowInterpolatorConfig: FlowInterpolator,
}


def _interpolator_architecture(data: Any) -> tuple[Any, Any]:
    """(config class, network class) of a parsed interpolator config: the flow interpolator
    when its section key is present, else the facial frame interpolator."""
    flow = isinstance(data, dict) and FlowInterpolatorConfig.SECTION in data
    config_class = FlowInterpolatorConfig if flow else InterpolatorConfig
    return config_class, _INTERPOLATOR_NETWORKS[config_class]


def _read_yaml(path: Path, kind: str) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ModelError(f"cannot read {kind} config {path}: {exc}") from exc


def get_interpolator_config(name_or_path: str | os.PathLike) -> InterpolatorConfigs:
    """Config of a named interpolator (``models/interpolators/NAME.yaml``) or a YAML path."""
    path = find_config(name_or_path, interpolator_dirs(), "interpolator")
    data = _read_yaml(path, "interpolator")
    config_class, _ = _interpolator_architecture(data)
    return config_class.from_dict(data, name=path.stem)


def build_interpolator(config: InterpolatorConfigs | str | os.PathLike) -> Interpolator:
    """A network of either architecture with fresh weights, in eval mode."""
    if not isinstance(config, tuple(_INTERPOLATOR_NETWORKS)):
        config = get_interpolator_config(config)
    return _INTERPOLATOR_NETWORKS[type(config)](config).eval()


def save_interpolator(
    model: Interpolator,
    path: str | os.PathLike,
    half: bool = True,
    extra_metadata: dict[str, str] | None = None,
) -> Path:
    """Safetensors weights (fp16 if ``half``) with the config in the metadata."""
    metadata = {"format": "fomcodec-interpolator"}
    metadata.update(extra_metadata or {})
    return save_weights(model, path, half=half, extra_metadata=metadata)


def _load_family_member(
    name_or_path: str | os.PathLike,
    folder: str,
    kind: str,
    architecture: Callable[[Any], tuple[Any, Any]],
) -> Any:
    """Weights of a family kept in ``folder`` (a ``.safetensors`` path, or a name with
    ``NAME.safetensors`` in that folder); the config comes from the file's metadata, else
    from the YAML beside it, and ``architecture`` maps it (parsed) to its config and network
    classes. The network carries ``model_name``, ``weights_hash`` and ``weights_path``."""
    path = Path(name_or_path)
    if path.suffix != ".safetensors":
        for candidate in family_dirs(folder):
            if (candidate / f"{name_or_path}.safetensors").is_file():
                path = candidate / f"{name_or_path}.safetensors"
                break
        else:
            raise ModelError(f"no trained weights for {kind} '{name_or_path}'")
    if not path.is_file():
        raise ModelError(f"weights file {path} not found")
    meta = read_safetensors_metadata(path)
    if "config" in meta:
        data, name = yaml.safe_load(meta["config"]), meta.get("name") or path.stem
    elif path.with_suffix(".yaml").is_file():
        data, name = _read_yaml(path.with_suffix(".yaml"), kind), path.stem
    else:
        raise ModelError(f"{path} holds no config and has no YAML beside it")
    config_class, network_class = architecture(data)
    config = config_class.from_dict(data, name=name)
    model = network_class(config)
    load_weights_into(model, _read_weights(path), str(path))
    model.model_name = config.name
    model.weights_hash = weights_hash(model)
    model.weights_path = path
    return model.eval()


def load_interpolator(
    name_or_path: str | os.PathLike, device: str | torch.device = "cpu"
) -> Interpolator:
    """Load a frame interpolator of either architecture by name (``models/interpolators/``)
    or weights path."""
    model = _load_family_member(
        name_or_path, INTERPOLATOR_FOLDER, "interpolator", _interpolator_architecture
    )
    return model.to(device)


def save_fuser(model: BaseLayerFuser, path: str | os.PathLike) -> Path:
    """Safetensors weights (fp32: the fuser is small) with the config in the metadata."""
    return save_weights(model, path, half=False, extra_metadata={"format": "fomcodec-fuser"})


def load_fuser(
    name_or_path: str | os.PathLike, device: str | torch.device = "cpu"
) -> BaseLayerFuser:
    """Load a base-layer fuser by name (``models/fusers/``) or weights path."""
    model = _load_family_member(
        name_or_path, FUSER_FOLDER, "fuser", lambda _: (FuserConfig, BaseLayerFuser)
    )
    return model.to(device)
