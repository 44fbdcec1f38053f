"""Does a dataset fit the model? Checked once, on two rows, before a run starts: a channel
mismatch or a label beyond the model's classes should be one sentence, not a crash (or a
wrong accuracy) minutes later."""

from __future__ import annotations

from typing import TYPE_CHECKING

from studio.core.base.errors import StudioError

if TYPE_CHECKING:
    from studio.core.data.dataset import Dataset
    from studio.core.model.loaded_model import LoadedModel


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def check_fits(dataset: Dataset, loaded: LoadedModel) -> Dataset:
    """Raise a StudioError when the data cannot feed this model; return the dataset otherwise."""
    import torch

    from studio.core.model.measure import primary_output

    rows = len(dataset)
    if rows == 0 or len(dataset.train_idx) == 0 or len(dataset.val_idx) == 0:
        raise StudioError(f"{dataset.name} has {rows} row(s); a run needs at least one.")
    if dataset.labels is not None:
        labels = dataset.labels
        if labels.dtype.is_floating_point or labels.dim() != 1 or len(labels) != rows:
            raise StudioError(f"{dataset.name}: labels must be one integer class per row.")
        if int(labels.min()) < 0:
            raise StudioError(f"{dataset.name}: label {int(labels.min())} is negative; classes are numbered from 0.")
    args, kwargs, _ = next(dataset.batches("val", 2))
    try:
        with torch.no_grad():
            output = primary_output(loaded.module(*args, **kwargs))
    except Exception as exc:
        shapes = ", ".join(f"{k} {'x'.join(map(str, v.shape[1:]))}" for k, v in dataset.inputs.items())
        raise StudioError(f"{dataset.name} does not fit {loaded.name}: its rows ({shapes}) fail in the model's "
                          f"forward pass ({_first_line(exc)}); the model expects {loaded.input_spec}.") from None
    if dataset.labels is not None and isinstance(output, torch.Tensor) and output.dim() >= 2:
        classes = output.shape[-1]
        top = int(dataset.labels.max())
        if top >= classes:
            raise StudioError(f"{dataset.name}: label {top} is outside the model's {classes} classes "
                              f"(0–{classes - 1}); the data belongs to another model or needs relabelling.")
    return dataset
