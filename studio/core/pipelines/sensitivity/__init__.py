"""Layer-by-layer sensitivity: sweep single-layer changes, measure the metric drop, fit plans to targets."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from studio.core.pipelines.sensitivity.events import CellDone, SweepPlanned
from studio.core.pipelines.sensitivity.result import SensitivityCell, SensitivityResult, SweepSetting
from studio.core.pipelines.sensitivity.spec import FittedPlan, SweepSpec, Target

if TYPE_CHECKING:
    from studio.core.base.cancel import CancelToken
    from studio.core.data.dataset import Dataset
    from studio.core.model.loaded_model import LoadedModel

__all__ = [
    "CellDone", "FittedPlan", "SensitivityCell", "SensitivityResult", "SweepPlanned", "SweepSetting", "SweepSpec",
    "Target", "fit_to_target", "sweep",
]


def sweep(loaded: LoadedModel, dataset: Dataset | None, spec: SweepSpec, cancel: CancelToken | None = None,
          cache_dir: Path | None = None) -> Iterator[object]:
    """Yield SweepPlanned, Progress, CellDone ... then Finished(SensitivityResult) (or RunCancelled)."""
    from studio.core.pipelines.sensitivity.pipeline import sweep as _sweep

    return _sweep(loaded, dataset, spec, cancel, cache_dir)


def fit_to_target(result: SensitivityResult, loaded: LoadedModel, target: Target) -> FittedPlan:
    """Choose one setting per layer that meets `target` with the least predicted drop."""
    from studio.core.pipelines.sensitivity.fit import fit_to_target as _fit

    return _fit(result, loaded, target)
