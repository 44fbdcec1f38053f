"""Load a weights file (safetensors, or a state_dict .pt read with weights_only=True)."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch
from torch import nn

from studio.core.base.errors import StudioError


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise StudioError(f"{path}: no such weights file.")
    if path.stat().st_size == 0:
        raise StudioError(f"{path}: the weights file is empty.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise StudioError(f"{path}: not a readable safetensors file ({exc}).") from exc
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before the refusal below
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise StudioError(f"{path}: holds more than tensors (a pickled object?); weights files are "
                          "read with weights_only=True. Save model.state_dict() instead.") from exc
    except Exception as exc:
        raise StudioError(f"{path}: not a readable PyTorch weights file (corrupt or truncated?).") from exc
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise StudioError(f"{path}: expected a state_dict (name → tensor), found {type(obj).__name__}.")
    return obj


def load_weights_into(module: nn.Module, path: Path) -> str:
    """Strict load: a mismatch lists the first missing/unexpected/mis-shaped keys."""
    state = read_state_dict(path)
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", wrong)):
        if keys:
            more = f" (+{len(keys) - 3} more)" if len(keys) > 3 else ""
            problems.append(f"{label}: {', '.join(keys[:3])}{more}")
    if problems:
        raise StudioError(f"{path} does not fit the architecture — " + "; ".join(problems) + ".")
    module.load_state_dict(state, strict=True)
    return f"Weights from {path.name}"
