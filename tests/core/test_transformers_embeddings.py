"""Issue 12, second part, on a small BERT classifier: int8 Embedding tables in the studio's own
`quantize` (values and bytes against independent computations, export realized by both
runtimes), ALBERT's factorized embedding as a low-rank method, TinyBERT's attention-map loss,
the attention-score FLOPs of removed heads and dropped layers in the projection, and the layer
map in the run report."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from studio.core.model.input_spec import InputSpec
from studio.core.model.loaded_model import LoadedModel
from studio.core.model.measure import figures
from studio.core.plan import CompressionPlan
from studio.core.techniques.quant_embedding import QuantEmbedding
from studio.core.techniques.quantization import QuantizeConfig, quantize_module
from tests.core.test_transformers import HIDDEN, SPEC, _compress, _loaded, _projection_is_measured
from tests import zoo

VOCAB = 120


def _per_row_int8(table: torch.Tensor) -> torch.Tensor:
    """Independent reference: symmetric int8, one scale per row, round half to even."""
    t = table.detach().double()
    scale = (t.abs().amax(1, keepdim=True) / 127).clamp(min=1e-30)  # an all-zero (padding) row stays zero
    return (torch.round(t / scale).clamp(-127, 127) * scale).float()


# --- int8 embedding tables ------------------------------------------------------------------

def test_quant_embedding_looks_up_per_row_int8_rows_and_counts_stored_bytes():
    torch.manual_seed(0)
    table = nn.Embedding(50, 24, padding_idx=0)
    layer = quantize_module(table, QuantizeConfig())  # int8 dynamic: a table has no activation to quantize
    assert isinstance(layer, QuantEmbedding) and layer.config.activations is None and layer.weight is table.weight
    ids = torch.tensor([[0, 3, 49, 7]])
    assert torch.allclose(layer(ids), _per_row_int8(table.weight)[ids], atol=1e-6)
    arrays = list(layer.storage_arrays())
    assert arrays[0].dtype == np.int8 and arrays[0].shape == (50, 24) and arrays[1].shape == (50,)
    assert layer.weight_storage_bytes() == 50 * 24 + 4 * 50 == sum(a.nbytes for a in arrays)
    fp16 = quantize_module(table, QuantizeConfig(dtype="fp16"))
    assert fp16.weight_storage_bytes() == 2 * 50 * 24
    loss = layer(ids).sum()  # straight-through: the float table learns
    loss.backward()
    assert table.weight.grad is not None and table.weight.grad.abs().sum() > 0


def test_int8_on_every_layer_reaches_the_embedding_tables_and_projects_exactly():
    loaded = _loaded()
    result, projection = _compress(loaded, [{"layers": "*", "quantize": {"dtype": "int8"}}])
    model = result.compressed
    tables = [n for n, m in model.named_modules() if isinstance(m, QuantEmbedding)]
    assert tables == ["bert.embeddings.word_embeddings", "bert.embeddings.position_embeddings",
                      "bert.embeddings.token_type_embeddings"]
    _projection_is_measured(loaded, result, projection)
    # bytes from an independent count: each int8 matrix's codes and one fp32 scale per row, the rest fp32
    expected = 0
    for name, module in loaded.module.named_modules():
        own = dict(module.named_parameters(recurse=False))
        if isinstance(module, (nn.Linear, nn.Embedding)):
            rows, cols = own["weight"].shape
            expected += rows * cols + 4 * rows + (4 * own["bias"].numel() if own.get("bias") is not None else 0)
        else:
            expected += sum(4 * p.numel() for p in own.values())
    expected += sum(b.nbytes for b in loaded.module.buffers())  # position and token-type ids
    assert figures(model, loaded.input_spec).bytes == expected
    args, kwargs = loaded.example_inputs()
    with torch.no_grad():
        table = loaded.module.bert.embeddings.word_embeddings.weight
        words = model.bert.embeddings.word_embeddings(kwargs["input_ids"])
        assert torch.allclose(words, _per_row_int8(table)[kwargs["input_ids"]], atol=1e-6)


def test_minilm_int8_everywhere_is_under_three_tenths_of_its_fp32_bytes():
    from studio.core.pipelines.opening import LoadRequest, load_model

    loaded = load_model(LoadRequest("sample:minilm-sentiment"))
    result, _ = _compress(loaded, [{"layers": "*", "quantize": {"dtype": "int8"}}])
    before, after = figures(loaded.module, loaded.input_spec).bytes, figures(result.compressed, loaded.input_spec).bytes
    assert after / before <= 0.30, after / before


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_int8_tables_are_realized_by_the_runtime(tmp_path, fmt):
    """The exported int8 file stores the word-embedding table in 8 bits and agrees with the
    simulated model (ONNX Runtime quantizes a table on one uint8 grid, the simulation per row)."""
    from studio.core.pipelines.export import ExportRequest, export

    loaded = _loaded()
    result, _ = _compress(loaded, [{"layers": "*", "quantize": {"dtype": "int8"}}])
    spec = InputSpec.parse(SPEC.replace("2x16", "1x16"))
    model = LoadedModel(result.compressed, "q", "q", "huggingface", spec)
    out = tmp_path / f"q.{fmt}"
    events = list(export(model, ExportRequest(fmt, out, "int8", int8_mode="dynamic", samples=8), None))
    report = events[-1].result.report.to_dict()
    assert "bert.embeddings.word_embeddings" in report["quantized_layers"]
    assert report["verification"]["cosine"] > 0.99 and report["verification"]["top1_agreement"] >= 0.75
    assert _table_bits(out, fmt) == 8


def _table_bits(path, fmt) -> int:
    """Bits per element of the stored (VOCAB x HIDDEN) table in the file."""
    if fmt == "onnx":
        import onnx

        graph = onnx.load(str(path)).graph
        sizes = {i.data_type for i in graph.initializer if tuple(i.dims) == (VOCAB, HIDDEN)}
        return 8 if sizes and sizes <= {onnx.TensorProto.UINT8, onnx.TensorProto.INT8} else 32
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_path=str(path)).get_tensor_details()
    kinds = {np.dtype(d["dtype"]).itemsize for d in details if tuple(d["shape"]) == (VOCAB, HIDDEN)}
    return 8 if kinds == {1} else 32


# --- ALBERT factorized embedding ------------------------------------------------------------

def test_albert_factorization_is_the_truncated_svd_with_exact_params_and_projection():
    from studio.core.techniques.lowrank_methods.albert import FactorizedEmbedding

    loaded = _loaded()
    rank = 8
    result, projection = _compress(loaded, [{"layers": "bert.embeddings.word_embeddings",
                                             "lowrank": {"rank": rank}}])  # svd on a table means albert
    layer = result.compressed.bert.embeddings.word_embeddings
    assert isinstance(layer, FactorizedEmbedding)
    assert sum(p.numel() for p in layer.parameters()) == rank * (VOCAB + HIDDEN)
    _projection_is_measured(loaded, result, projection)
    table = loaded.module.bert.embeddings.word_embeddings.weight.detach().double()
    u, s, vh = torch.linalg.svd(table, full_matrices=False)
    best = (u[:, :rank] * s[:rank]) @ vh[:rank]  # Eckart-Young: the best rank-r table
    ids = torch.arange(VOCAB)[None]
    with torch.no_grad():
        assert torch.allclose(layer(ids)[0].double(), best, atol=1e-5)


def test_albert_and_int8_compose_with_an_exact_projection():
    loaded = _loaded()
    result, projection = _compress(loaded, [
        {"layers": "bert.embeddings.word_embeddings", "lowrank": {"method": "albert", "rank_fraction": 0.25}},
        {"layers": "*", "quantize": {"dtype": "int8"}}])
    layer = result.compressed.bert.embeddings.word_embeddings
    assert isinstance(layer.first, QuantEmbedding)
    _projection_is_measured(loaded, result, projection)


def test_albert_refuses_other_layers_and_svd_tucker_cp_refuse_tables():
    from studio.core.techniques.lowrank_methods import get_method

    table, linear = nn.Embedding(10, 4), nn.Linear(4, 4)
    assert get_method("albert").problem(linear) and get_method("albert").problem(table) is None
    assert all(get_method(m).problem(table) for m in ("svd", "tucker", "cp"))
    assert get_method("albert").problem(nn.Embedding(10, 4, max_norm=1.0))


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_factorized_embedding_exports_match_pytorch(tmp_path, fmt):
    from studio.core.pipelines.export import ExportRequest, export

    loaded = _loaded()
    result, _ = _compress(loaded, [{"layers": "bert.embeddings.word_embeddings", "lowrank": {"rank": 8}}])
    spec = InputSpec.parse(SPEC.replace("2x16", "1x16"))
    model = LoadedModel(result.compressed, "f", "f", "huggingface", spec)
    events = list(export(model, ExportRequest(fmt, tmp_path / f"f.{fmt}", "fp32", samples=8), None))
    verification = events[-1].result.report.to_dict()["verification"]
    assert verification["max_abs"] < 1e-3 and verification["top1_agreement"] == 1.0


# --- FLOPs of removed heads and dropped layers ----------------------------------------------

@pytest.mark.parametrize("rules", [
    [{"layers": "bert.encoder.layer.*.attention", "heads": {"keep": 1}}],
    [{"layers": "bert.encoder.layer.1", "drop": True}],
    [{"layers": "bert.encoder.layer.1.attention", "heads": {"keep": 2}},
     {"layers": "bert.encoder.layer.2.attention", "heads": {"keep": 3}},
     {"layers": "bert.encoder.layer.0", "drop": True}],
])
def test_projected_flops_are_the_measured_flops(rules):
    loaded = _loaded()
    result, projection = _compress(loaded, rules)
    before, after = figures(loaded.module, loaded.input_spec), figures(result.compressed, loaded.input_spec)
    assert projection.before.flops == before.flops
    assert projection.after.flops == after.flops, (projection.after.flops, after.flops)


def test_score_flops_formula():
    from studio.core.techniques.heads import score_flops

    batch, seq, heads, size = 2, 16, 4, 8  # QKᵀ: b·h·s·s·d multiply-adds, P·V the same; 2 FLOPs each
    assert score_flops(batch, seq, seq, heads * size) == 2 * (2 * batch * heads * seq * seq * size)


# --- TinyBERT attention maps -----------------------------------------------------------------

def test_attention_map_loss_matches_kept_heads_to_their_origin():
    """Layer 0 of a head-pruned student sees the teacher's input, so each kept head's map IS the
    teacher's map of the same head: zero loss when matched by origin, not when averaged."""
    from studio.core.pipelines.attention_distill import AttentionLoss, map_loss
    from studio.core.techniques.heads import KEPT_HEADS, prune_heads_

    teacher = _loaded().module
    student = copy.deepcopy(teacher)
    saved = teacher.config._attn_implementation
    attention = student.bert.encoder.layer[0].attention
    prune_heads_(attention, [0, 2])
    assert getattr(attention.self, KEPT_HEADS) == (1, 3)
    term = AttentionLoss(teacher, student, ("bert.encoder.layer.0",))
    args, kwargs = _loaded().example_inputs()
    with term.running():
        student(*args, **kwargs), teacher(*args, **kwargs)
        s_map = term.captures[0].maps["bert.encoder.layer.0.attention.self"]
        t_map = term.captures[1].maps["bert.encoder.layer.0.attention.self"]
        assert float(term.loss()) < 1e-10
    assert s_map.shape[1] == 2 and t_map.shape[1] == 4
    assert float(map_loss(s_map, t_map)) > 1e-6  # no origin known: averaged maps differ
    expected = (s_map - t_map[:, [1, 3]]).pow(2).sum(-1).mean()
    assert torch.isclose(map_loss(s_map, t_map, (1, 3)), expected)
    term.close()
    assert student.config._attn_implementation == teacher.config._attn_implementation == saved


def test_training_loss_adds_the_attention_term_and_restores_the_attention():
    from studio.core.pipelines.finetune import FinetuneSettings
    from studio.core.pipelines.finetune_loop import TrainingLoss

    teacher = _loaded().module
    student = copy.deepcopy(teacher)
    with torch.no_grad():
        student.bert.encoder.layer[0].attention.self.query.weight.mul_(3.0)
    saved = student.config._attn_implementation
    args, kwargs = _loaded().example_inputs()
    batch = (args, kwargs, None)
    plain = TrainingLoss(teacher, student, FinetuneSettings(alpha=1.0), torch.device("cpu"))
    with_maps = TrainingLoss(teacher, student, FinetuneSettings.from_dict(
        {"alpha": 1.0, "attention": ["bert.encoder.layer.*"], "attention_weight": 10.0}), torch.device("cpu"))
    a, b = plain(batch), with_maps(batch)
    assert float(b) > float(a)
    b.backward()
    assert student.bert.encoder.layer[0].attention.self.query.weight.grad is not None
    assert student.config._attn_implementation == saved
    plain.close(), with_maps.close()
    settings = FinetuneSettings.from_dict({"attention": ["bert.encoder.layer.*"]})
    assert FinetuneSettings.from_dict(settings.to_dict()) == settings
    assert "attention" not in FinetuneSettings().to_dict()


# --- run report and export labels -----------------------------------------------------------

def test_run_report_settings_hold_the_layer_map():
    from studio.core.base.events import Finished
    from studio.core.pipelines.run import run

    loaded = _loaded()
    plan = CompressionPlan.from_dict({"rules": [{"layers": "bert.encoder.layer.1", "drop": True}]})
    result = [e for e in run(loaded, plan, None) if isinstance(e, Finished)][0].result
    assert result.report.to_dict()["settings"]["layer_map"] == {"bert.encoder.layer.0": "bert.encoder.layer.0",
                                                                 "bert.encoder.layer.1": "bert.encoder.layer.2"}


def test_onnx_converter_label_names_the_fused_bert_path():
    from studio.core.pipelines.export.runtimes import OnnxRuntime

    assert "transformer optimizer" in OnnxRuntime(_loaded()).converter
    plain = LoadedModel(zoo.TinyMobileNet().eval(), "m", "m", "test", InputSpec.parse("1x3x16x16"))
    assert "dynamo" in OnnxRuntime(plain).converter
