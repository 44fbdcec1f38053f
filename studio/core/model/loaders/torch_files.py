"""Single-file models: TorchScript archives and pickled full models (opt-in only).

A weights-only file (state_dict, safetensors) gets a message saying an architecture
is needed; anything unreadable gets one sentence, never a traceback.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn

from studio.core.base.errors import StudioError, UntrustedPickleError
from studio.core.model.loaded_model import LoadedModel
from studio.core.model.loaders.guess import declared_input_spec, guess_input_spec

NEEDS_ARCHITECTURE = ("{path} holds only weights (a state_dict), not an architecture. Open it with the "
                      "model's code: studio inspect path/to/model.py:Net --weights {path}")
TORCHSCRIPT_NOTE = ("TorchScript model: inspection and export work; pruning and rank reduction replace "
                    "modules and need the eager model (file.py:Net --weights W).")


def _zip_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return []


def load_torch_file(path: Path, trust: bool = False) -> LoadedModel:
    if path.stat().st_size == 0:
        raise StudioError(f"{path}: the file is empty.")
    if path.suffix == ".safetensors":
        raise StudioError(NEEDS_ARCHITECTURE.format(path=path))
    if path.suffix == ".onnx":
        raise StudioError(f"{path}: ONNX files are an export target; open the PyTorch model instead.")
    names = _zip_names(path)
    if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
        return _load_torchscript(path)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before the refusal below
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" not in str(exc) and not any(n.endswith("data.pkl") for n in names):
            raise StudioError(f"{path}: not a readable PyTorch file (corrupt, truncated or another format).") from exc
        if not trust:
            raise UntrustedPickleError(
                f"{path} is a pickled model. Unpickling can run arbitrary code, so the studio refuses it "
                "by default; load it only if you trust its source (CLI: --trust; window: confirm the prompt). "
                "Safer: save a state_dict and open file.py:Net --weights.") from exc
        return _load_pickle(path)
    except Exception as exc:
        raise StudioError(f"{path}: not a readable PyTorch file (corrupt, truncated or another format).") from exc
    if isinstance(obj, dict):
        raise StudioError(NEEDS_ARCHITECTURE.format(path=path))
    raise StudioError(f"{path} holds a {type(obj).__name__}, not a model.")


def _load_torchscript(path: Path) -> LoadedModel:
    try:
        with warnings.catch_warnings():  # TorchScript is deprecated upstream but users still ship it
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise StudioError(f"{path}: corrupt TorchScript archive ({str(exc).splitlines()[0][:200]}).") from exc
    spec = declared_input_spec(module) or guess_input_spec(module)
    return LoadedModel(module=module, name=path.name, source=str(path), kind="torchscript",
                       input_spec=spec, eager=False, notes=(TORCHSCRIPT_NOTE,))


def _load_pickle(path: Path) -> LoadedModel:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except (AttributeError, ModuleNotFoundError) as exc:
        raise StudioError(f"{path}: the pickle refers to code that cannot be imported here ({exc}). Pickles "
                          "need the defining module importable; save a state_dict and open file.py:Net --weights.") from exc
    except Exception as exc:
        raise StudioError(f"{path}: unpickling failed ({type(exc).__name__}: {exc}).") from exc
    if not isinstance(obj, nn.Module):
        raise StudioError(f"{path} holds a {type(obj).__name__}, not a torch.nn.Module.")
    spec = declared_input_spec(obj) or guess_input_spec(obj)
    return LoadedModel(module=obj, name=path.name, source=str(path), kind="pickle", input_spec=spec,
                       notes=("Loaded from a pickle you chose to trust.",))
