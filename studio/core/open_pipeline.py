"""Open-and-inspect as a cancellable generator of events: the CLI, the tests and the
GUI's worker thread all drive this same code."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

from studio.core.cancel import CancelToken
from studio.core.events import Finished, StageStarted
from studio.core.input_spec import InputSpec
from studio.core.loaded_model import LoadedModel
from studio.core.loaders import LoadRequest, load_model
from studio.core.model_tree import ModelTree


@dataclass(frozen=True)
class OpenedModel:
    loaded: LoadedModel
    tree: ModelTree
    load_seconds: float
    inspect_seconds: float


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
    from studio.core.inspect import inspect_model

    yield StageStarted("inspect", str(loaded.input_spec))
    start = time.perf_counter()
    tree = inspect_model(loaded.module, loaded.input_spec, loaded.notes)
    cancel.raise_if_cancelled()
    yield Finished(OpenedModel(loaded, tree, load_seconds, time.perf_counter() - start))
