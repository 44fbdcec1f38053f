"""Open any supported model source as a `LoadedModel`.

Sources: `sample:NAME`, a Hugging Face model directory, `file.py:factory` (with optional
weights), TorchScript files, and pickled full models (only with `trust=True`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from studio.core.base.errors import StudioError
from studio.core.model.input_spec import InputSpec
from studio.core.model.loaded_model import LoadedModel

MANIFEST = "studio.json"  # marks a studio compressed folder
_FACTORY = re.compile(r"^(?P<path>.+\.py):(?P<name>[A-Za-z_][A-Za-z0-9_]*)$")


@dataclass(frozen=True)
class LoadRequest:
    """What the user asked to open; the same object comes from the CLI and the GUI."""

    source: str
    weights: str | None = None
    trust: bool = False
    trust_remote_code: bool = False
    input_spec: InputSpec | None = None
    input_dtype: str | None = None
    meta: bool = False  # build a Hugging Face model from its config on the meta device (no weights read)


def load_model(request: LoadRequest) -> LoadedModel:
    """Load, put in eval mode and attach the input spec (explicit > model's own > guessed).
    A studio compressed folder is not a plain source (it replays a recipe on its original):
    `studio.core.pipelines.opening.load_model` opens those, and everything else through here."""
    source = request.source.strip()
    if not source:
        raise StudioError("No model given: pass a sample (sample:digits-cnn), a file, a folder or file.py:factory.")
    if request.meta and (source.startswith("sample:") or not Path(source).expanduser().is_dir()):
        raise StudioError(f"--meta builds a model from a Hugging Face folder's config.json; {source!r} is not "
                          "such a folder.")
    if request.weights and not _FACTORY.match(source):
        raise StudioError("--weights applies to a Python factory (file.py:name); "
                          f"{source!r} already carries its weights.")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the studio never downloads at run time
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    return finish_loading(_dispatch(source, request), request)


def finish_loading(loaded: LoadedModel, request: LoadRequest) -> LoadedModel:
    """What every opened model gets, whatever opened it: eval mode, where it came from, the input spec."""
    source = request.source.strip()
    loaded.module.eval()
    loaded.extras.setdefault("request", {"source": _portable_source(source), "weights": _absolute(request.weights),
                                         "trust_remote_code": request.trust_remote_code})
    if request.input_spec is not None:
        loaded = loaded.with_input_spec(request.input_spec)
    elif request.input_dtype:
        loaded = loaded.with_input_spec(loaded.input_spec.with_dtype(request.input_dtype))
    return loaded


def is_meta(loaded: LoadedModel) -> bool:
    """A model built from its config alone: every figure is known, no weight exists."""
    return bool(loaded.extras.get("meta"))


def require_weights(loaded: LoadedModel, action: str) -> None:
    """The one refusal for work that needs real weights on a model opened without them."""
    if is_meta(loaded):
        raise StudioError(f"{loaded.name} was opened without weights (config only, meta device), so it cannot be "
                          f"{action}; open the folder with its weights (model.safetensors) to do that.")


def is_factory_source(source: str) -> bool:
    """`file.py:name` sources import (and so run) that file."""
    return bool(_FACTORY.match(source.strip()))


def _dispatch(source: str, request: LoadRequest) -> LoadedModel:
    if source.startswith("sample:"):
        from studio.core.model.loaders.samples import load_sample

        return load_sample(source.removeprefix("sample:"))
    match = _FACTORY.match(source)
    if match:
        from studio.core.model.loaders.factory import load_factory

        return load_factory(Path(match["path"]), match["name"], request.weights)
    path = Path(source).expanduser()
    if not path.exists():
        if source.endswith(".py"):
            raise StudioError(f"{source}: name the factory too, as {source}:ClassOrFunction.")
        raise StudioError(f"{source}: no such file or directory.")
    if path.is_dir():
        from studio.core.model.loaders.huggingface import load_hf_directory

        if (path / MANIFEST).is_file():
            raise StudioError(f"{source}: a studio compressed folder; open it through the studio's open pipeline.")
        return load_hf_directory(path, trust_remote_code=request.trust_remote_code, meta=request.meta)
    if path.suffix == ".py":
        raise StudioError(f"{source}: name the factory too, as {source}:ClassOrFunction.")
    from studio.core.model.loaders.torch_files import load_torch_file

    return load_torch_file(path, trust=request.trust)


def _absolute(path: str | None) -> str | None:
    return str(Path(path).expanduser().resolve()) if path else None


def _portable_source(source: str) -> str:
    """Absolute paths, so a compressed folder can find its original from anywhere."""
    if source.startswith("sample:"):
        return source
    match = _FACTORY.match(source)
    if match:
        return f"{_absolute(match['path'])}:{match['name']}"
    return _absolute(source) or source
