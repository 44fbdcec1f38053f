"""Does a dataset fit the model? Checked once, on two rows, before a run starts: a channel
mismatch or a label beyond the model's classes should be one sentence, not a crash (or a
wrong accuracy) minutes later. Shapes are checked on the meta device when they alone can
tell, so checking reads no weight."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from studio.core.base.errors import StudioError

if TYPE_CHECKING:
    from torch import nn

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
    shape = _meta_shape(loaded.module, args, kwargs)
    if shape is None:  # a forward that looks at values (or ids to check): the real one, its output dropped at once
        try:
            with torch.no_grad():
                output = primary_output(loaded.module(*args, **kwargs))
                shape = tuple(output.shape) if isinstance(output, torch.Tensor) else ()
                del output
        except Exception as exc:
            shapes = ", ".join(f"{k} {'x'.join(map(str, v.shape[1:]))}" for k, v in dataset.inputs.items())
            raise StudioError(f"{dataset.name} does not fit {loaded.name}: its rows ({shapes}) fail in the model's "
                              f"forward pass ({_first_line(exc)}); the model expects {loaded.input_spec}.") from None
    if dataset.labels is not None and len(shape) >= 2:
        classes = shape[-1]
        top = int(dataset.labels.max())
        if top >= classes:
            raise StudioError(f"{dataset.name}: label {top} is outside the model's {classes} classes "
                              f"(0–{classes - 1}); the data belongs to another model or needs relabelling.")
    return dataset


def _meta_shape(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int, ...] | None:
    """The output's shape from a forward on a meta copy (shapes only: no weight is read, no
    activation allocated; a 135 M causal LM would otherwise page in all its weights and build
    two windows of vocabulary-wide logits just to be checked), () for an output that is not a
    tensor; None when that cannot say whether the data fits: the forward needs values, or the
    rows hold integers a real forward would index with (token ids beyond the embedding table
    fail there, not on meta tensors) other than a Hugging Face model's `input_ids` (checked here
    against its input embedding) and all-ones `attention_mask`."""
    import torch

    from studio.core.model.measure import primary_output
    from studio.core.model.meta_forward import meta_copy, meta_inputs

    if isinstance(module, torch.jit.ScriptModule):
        return None
    try:
        meta_args, meta_kwargs = meta_inputs(module, args, kwargs)
        values = [a for a in meta_args if isinstance(a, torch.Tensor)] + \
            [v for k, v in meta_kwargs.items() if isinstance(v, torch.Tensor) and k != "input_ids"]
        weight = next(iter(module.parameters()), None)
        if any(not v.is_floating_point() or (weight is not None and v.dtype != weight.dtype) for v in values) \
                or not _ids_fit(module, kwargs.get("input_ids")):
            return None
        with torch.no_grad():
            output = primary_output(meta_copy(module)(*meta_args, **meta_kwargs))
    except Exception:  # noqa: BLE001 - the real forward decides (and words the error)
        return None
    return tuple(output.shape) if isinstance(output, torch.Tensor) else ()


def _ids_fit(module: nn.Module, ids: object) -> bool:
    import torch

    if ids is None:
        return True
    table = getattr(module, "get_input_embeddings", lambda: None)()
    return isinstance(ids, torch.Tensor) and isinstance(table, torch.nn.Embedding) and ids.numel() > 0 \
        and 0 <= int(ids.min()) and int(ids.max()) < table.num_embeddings
