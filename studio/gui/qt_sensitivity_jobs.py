"""The sweep as a window job: the core generator's events in a private envelope, so other
listeners of the shared job runner pass them by, and errors as an event of their own (the
runner's `failed` signal belongs to the run controller's dialogs)."""

from __future__ import annotations

import json
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from PySide6.QtCore import QStandardPaths

from studio.core.base.cancel import Cancelled
from studio.core.base.errors import StudioError
from studio.core.base.events import Progress
from studio.core.pipelines.sensitivity import CellDone, SensitivityResult

if TYPE_CHECKING:
    from studio.core.base.cancel import CancelToken

BATCH_S = 0.04  # cells cross to the GUI thread in batches of at most this age


@dataclass(frozen=True)
class SweepBatch:
    events: tuple[object, ...]


@dataclass(frozen=True)
class SweepFailed:
    message: str


def enveloped(factory: Callable[[CancelToken], Iterator[object]], token: CancelToken) -> Iterator[object]:
    """The job's generator: the sweep's events in time-boxed batches; errors become SweepFailed."""
    events = None
    pending: list[object] = []
    sent = time.monotonic()
    try:
        events = factory(token)
        for event in events:
            pending.append(event)
            if not isinstance(event, (CellDone, Progress)) or time.monotonic() - sent >= BATCH_S:
                yield SweepBatch(tuple(pending))
                pending, sent = [], time.monotonic()
        if pending:
            yield SweepBatch(tuple(pending))
    except Cancelled:
        raise
    except StudioError as exc:
        yield SweepFailed(str(exc))
    except Exception as exc:  # a bug: keep the window alive, log the traceback
        traceback.print_exc(file=sys.stderr)
        yield SweepFailed(f"Unexpected error: {type(exc).__name__}: {exc}")
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


def default_cache_dir() -> Path:
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.CacheLocation)
    return Path(base or Path.home() / ".cache" / "compression-studio") / "sensitivity"


def load_result(path: str | Path, module: Any) -> SensitivityResult:
    """Read a saved sweep; one StudioError for an unreadable file or another model's table."""
    try:
        result = SensitivityResult.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except OSError as exc:
        raise StudioError(f"Could not read {path}: {exc.strerror or exc}.") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise StudioError(f"{path} is not a sensitivity result ({type(exc).__name__}: {exc}).") from None
    names = {name for name, _ in module.named_modules()}
    missing = [layer for layer in result.layers if layer not in names]
    if missing:
        raise StudioError(f"{path} was measured on another model: this one has no layer {missing[0]!r}.")
    return result
