"""Open-and-inspect as a cancellable generator of events: the CLI, the tests and the
GUI's worker thread all drive this same code."""

from __future__ import annotations

import time
from pathlib import Path
from dataclasses import dataclass
from typing import Iterator

from studio.core.base.cancel import CancelToken
from studio.core.base.events import Finished, StageStarted
from studio.core.model.input_spec import InputSpec
from studio.core.model.loaded_model import LoadedModel
from studio.core.model.loaders import MANIFEST, LoadRequest, finish_loading
from studio.core.model.loaders import load_model as load_source
from studio.core.model.model_tree import ModelTree


@dataclass(frozen=True)
class OpenedModel:
    loaded: LoadedModel
    tree: ModelTree
    load_seconds: float
    inspect_seconds: float


def load_model(request: LoadRequest) -> LoadedModel:
    """Any model source, a studio compressed folder included (it replays its recipe on its
    original, so it opens here, above the loaders, and not inside them)."""
    path = Path(request.source.strip()).expanduser()
    if request.source.strip() and (path / MANIFEST).is_file():
        from studio.core.pipelines.compressed_dir import load_compressed_dir

        loaded = load_compressed_dir(path, trust=request.trust, trust_remote_code=request.trust_remote_code,
                                     open_original=load_model)
        return finish_loading(loaded, request)
    return load_source(request)


def open_model(request: LoadRequest, cancel: CancelToken | None = None) -> Iterator[object]:
    """Load `request`, inspect it and finish with an `OpenedModel`."""
    cancel = cancel or CancelToken()
    yield StageStarted("load", request.source)
    start = time.perf_counter()
    loaded = load_model(request)
    load_seconds = time.perf_counter() - start
    cancel.raise_if_cancelled()
    yield from _inspect(loaded, load_seconds, cancel)


def reinspect(loaded: LoadedModel, spec: InputSpec, cancel: CancelToken | None = None) -> Iterator[object]:
    """Inspect an already loaded model again with another input spec (no reload)."""
    yield from _inspect(loaded.with_input_spec(spec), 0.0, cancel or CancelToken())


def _inspect(loaded: LoadedModel, load_seconds: float, cancel: CancelToken) -> Iterator[object]:
    from studio.core.model.inspection import inspect_model

    yield StageStarted("inspect", str(loaded.input_spec))
    start = time.perf_counter()
    tree = inspect_model(loaded.module, loaded.input_spec, loaded.notes)
    cancel.raise_if_cancelled()
    yield Finished(OpenedModel(loaded, tree, load_seconds, time.perf_counter() - start))
