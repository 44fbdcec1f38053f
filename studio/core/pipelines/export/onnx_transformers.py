"""ONNX Runtime's transformer optimizer for BERT-family models: attention, Skip-LayerNorm,
embedding-LayerNorm and GELU fusion into ORT's contrib kernels, before int8 quantization.

Why a second export path: ORT's fusion patterns are written against the TorchScript
exporter's graph of the eager attention. On the dynamo exporter's graph (SDPA decomposed with
IsNaN/Where guards) the optimizer fuses only the 6 BiasGelu of MiniLM and no Attention or
SkipLayerNormalization; on the TorchScript graph of the eager attention it fuses all of them
(MiniLM: 6 Attention, 12 SkipLayerNormalization, 1 EmbedLayerNormalization, 6 BiasGelu;
325 nodes in the dynamo graph, 74 fused). Numbers of both graphs: benchmarks/bench_transformers.py."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from studio.core.base.errors import StudioError
from studio.core.base.logs import quiet_loggers
from studio.core.model.input_spec import InputSpec
from studio.core.pipelines.export.wrap import ExportWrapper, example_args
from studio.core.pipelines.attention_distill import eager_attention  # the same switch the attention-map loss uses

# model_type values ORT's "bert" optimizer handles (its fusions match their shared layout)
BERT_FAMILY = {"bert", "roberta", "xlm-roberta", "distilbert", "electra", "camembert", "mpnet"}
OPSET = 17
FUSED = ("Attention", "SkipLayerNormalization", "EmbedLayerNormalization", "BiasGelu", "Gelu", "FastGelu")
CONVERTER = ("torch.onnx (TorchScript, eager attention) + ONNX Runtime's transformer optimizer (Attention, "
             "SkipLayerNorm, EmbedLayerNorm, GELU fused) + symbolic shape inference")


def bert_config(model: nn.Module) -> Any | None:
    """The first Hugging Face config of a BERT-family encoder inside `model`, or None."""
    for module in model.modules():
        config = getattr(module, "config", None)
        if getattr(config, "model_type", None) in BERT_FAMILY and hasattr(config, "hidden_size"):
            return config
    return None


def fusable(model: nn.Module) -> bool:
    return bert_config(model) is not None


def attention_shape(model: nn.Module) -> tuple[int, int]:
    """(heads, their total width) for ORT's Attention fusion, read from the weights: after head
    pruning a layer has fewer heads than its config says. (0, 0) lets ORT detect them when the
    layers differ. A wrong count fuses into wrong numbers (12 given for 6 kept heads: logits
    1.52 instead of 0.86), so it is never taken from the config alone."""
    shapes = set()
    for module in model.modules():
        size, query = getattr(module, "attention_head_size", None), getattr(module, "query", None)
        if isinstance(size, int) and isinstance(query, nn.Linear):
            shapes.add((query.out_features // size, query.out_features))
    return shapes.pop() if len(shapes) == 1 else (0, 0)


def export_fused(model: nn.Module, spec: InputSpec, path: Path, output_name: str) -> dict[str, int]:
    """TorchScript export of the eager attention (dynamic batch and sequence axes), then ORT's
    transformer optimizer and ORT's symbolic shape inference (the quantizer needs the types of
    the contrib ops' outputs); returns the fused-op counts."""
    import onnx
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference
    from onnxruntime.transformers.optimizer import optimize_model

    config = bert_config(model)
    if config is None:
        raise StudioError("ONNX Runtime's transformer optimizer applies to BERT-family models only.")
    heads, width = attention_shape(model)
    names = [t.name for t in spec.tensors]
    axes = {n: ({0: "batch", 1: "sequence"} if t.is_integer and len(t.shape) == 2 else {0: "batch"})
            for n, t in zip(names, spec.tensors)}
    axes[output_name] = {0: "batch"}
    raw = path.with_suffix(".raw.onnx")
    wrapper = ExportWrapper(model, spec).eval()
    quiet_loggers("torch.onnx")
    try:
        with eager_attention(model), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, example_args(spec), str(raw), dynamo=False, opset_version=OPSET,
                              input_names=names, output_names=[output_name], dynamic_axes=axes)
        quiet_loggers("onnxruntime.transformers")
        quiet_loggers("onnxruntime.transformers.fusion_attention")
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optimized = optimize_model(str(raw), model_type="bert", num_heads=heads, hidden_size=width)
            shaped = SymbolicShapeInference.infer_shapes(optimized.model, auto_merge=True)
        onnx.save(shaped, str(path))
    except StudioError:
        raise
    except Exception as exc:
        raise StudioError(f"ONNX export with transformer fusion failed ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:300] if str(exc) else ''}).") from exc
    finally:
        raw.unlink(missing_ok=True)
    stats = optimized.get_fused_operator_statistics()
    return {op: int(stats.get(op, 0)) for op in FUSED if stats.get(op)}
