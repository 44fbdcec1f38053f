"""The model tree against independent computations on structurally different models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from studio.core.base.errors import StudioError
from studio.core.model.input_spec import InputSpec
from studio.core.model.inspection import describe_shapes, inspect_model
from tests import zoo


def _bert(**kw):
    from transformers import BertModel

    torch.manual_seed(0)
    return BertModel(zoo.tiny_bert_config(**kw)).eval()


def _bert_mlm():
    from transformers import BertForMaskedLM

    torch.manual_seed(0)
    return BertForMaskedLM(zoo.tiny_bert_config()).eval()


TEXT = InputSpec.parse("input_ids 1x16 int64 [0,120); attention_mask 1x16 int64 [1,2)")
CASES = {
    "mobilenet": (lambda: zoo.TinyMobileNet().eval(), InputSpec.parse("2x3x16x16 float32")),
    "digits": (lambda: __import__("studio.core.model.samples.digits_cnn", fromlist=["x"]).build_digits_cnn(),
               InputSpec.parse("1x1x8x8 float32")),
    "bert": (_bert, TEXT),
    "bert-mlm-tied": (_bert_mlm, TEXT),
    "tied-lm": (lambda: zoo.TiedLM().eval(), InputSpec.parse("1x7 int64 [0,50)")),
    "reused": (lambda: zoo.ReusedBlock().eval(), InputSpec.parse("3x6 float32")),
}


@pytest.mark.parametrize("case", CASES)
def test_totals_match_unique_parameters_and_state_bytes(case):
    build, spec = CASES[case]
    model = build()
    tree = inspect_model(model, spec)
    assert tree.total_params == zoo.unique_params(model)
    assert tree.total_bytes == zoo.unique_state_bytes(model)
    assert tree.root.trainable_params == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert sum(tree.root.bytes_by_dtype.values()) == tree.total_bytes
    assert len(tree) == len(list(model.named_modules(remove_duplicate=False)))
    assert tree.root.share == 1.0


def test_flops_match_torch_counter_for_whole_model():
    from torch.utils.flop_counter import FlopCounterMode

    model = _bert()
    counter = FlopCounterMode(display=False)
    _, kwargs = TEXT.make_inputs()
    with torch.no_grad(), counter:
        model(**kwargs)
    # torch's counter knows no formula for CPU attention; the studio counts it: QK^T and AV,
    # 2 * (L * L * hidden) each, per layer (2 layers, L = 16, hidden 32)
    attention = 2 * 2 * (2 * 16 * 16 * 32)
    assert inspect_model(model, TEXT).total_flops == counter.get_total_flops() + attention > attention


def test_tied_weights_counted_once_and_flagged():
    model = zoo.TiedLM().eval()
    tree = inspect_model(model, InputSpec.parse("1x7 int64 [0,50)"))
    emb = 50 * 16
    assert tree["embed"].shared and tree["lm_head"].shared and not tree["body"].shared
    assert tree["embed"].total_params == emb and tree["lm_head"].total_params == emb
    assert tree.total_params == emb + 16 * 16 + 16  # embed once, body, nothing more for lm_head


def test_hf_tied_decoder_is_flagged():
    model = _bert_mlm()
    tree = inspect_model(model, TEXT)
    assert tree["bert.embeddings.word_embeddings"].shared
    assert tree["cls.predictions.decoder"].shared


def test_reused_module_appears_under_both_names_but_counts_once():
    tree = inspect_model(zoo.ReusedBlock().eval(), InputSpec.parse("3x6 float32"))
    assert tree["first"].shared and tree["second"].shared
    assert tree.total_params == 6 * 6 + 6 + 6 * 2 + 2


@pytest.mark.parametrize("batch,cin,cout,k,stride,pad,groups,hw", [
    (1, 3, 8, 3, 1, 1, 1, 16),
    (2, 8, 8, 3, 2, 1, 8, 15),   # depthwise, strided, odd size
    (1, 6, 12, 5, 1, 0, 3, 12),  # grouped
    (3, 4, 16, 1, 1, 0, 1, 7),   # pointwise
])
def test_conv2d_flops_equal_analytic_formula(batch, cin, cout, k, stride, pad, groups, hw):
    conv = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, groups=groups)
    model = nn.Sequential(conv).eval()
    tree = inspect_model(model, InputSpec.parse(f"{batch}x{cin}x{hw}x{hw} float32"))
    out = (hw + 2 * pad - k) // stride + 1
    analytic = 2 * batch * cout * out * out * (cin // groups) * k * k
    assert tree["0"].flops == analytic
    assert tree["0"].output_shape == f"{batch}x{cout}x{out}x{out}"
    assert tree["0"].input_shape == f"{batch}x{cin}x{hw}x{hw}"


@pytest.mark.parametrize("batch,seq,fin,fout", [(1, None, 20, 7), (4, None, 64, 10), (2, 9, 16, 32)])
def test_linear_flops_equal_analytic_formula(batch, seq, fin, fout):
    model = nn.Sequential(nn.Linear(fin, fout)).eval()
    shape = f"{batch}x{seq}x{fin}" if seq else f"{batch}x{fin}"
    tree = inspect_model(model, InputSpec.parse(f"{shape} float32"))
    assert tree["0"].flops == 2 * batch * (seq or 1) * fin * fout
    assert tree.total_flops == tree["0"].flops


def test_flops_attributed_up_the_hierarchy():
    tree = inspect_model(zoo.TinyMobileNet().eval(), InputSpec.parse("1x3x16x16 float32"))
    for node in tree.nodes():
        if node.children and node.output_shape:
            assert node.flops >= sum(c.flops for c in node.children if c.name.count(".") == node.name.count(".") + (1 if node.name else 0))
    assert tree.total_flops == sum(c.flops for c in tree.root.children)


def test_sparsity_is_fraction_of_exact_zeros():
    model = nn.Sequential(nn.Linear(10, 10, bias=False), nn.Linear(10, 5, bias=False)).eval()
    with torch.no_grad():
        model[0].weight[:5] = 0  # 50 of 100 zeros
    tree = inspect_model(model, None)
    assert tree["0"].sparsity == pytest.approx(0.5)
    assert tree["1"].sparsity == 0.0
    assert tree.root.sparsity == pytest.approx(50 / 150)


def test_bytes_by_dtype_for_mixed_precision():
    model = nn.Sequential(nn.Linear(8, 8).half(), nn.Linear(8, 4)).eval()
    tree = inspect_model(model, None)
    assert tree.root.bytes_by_dtype == {"float16": (64 + 8) * 2, "float32": (32 + 4) * 4}


def test_inspection_leaves_the_model_untouched():
    model = zoo.TinyMobileNet().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    inspect_model(model, InputSpec.parse("1x3x16x16 float32"))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert not model.training


def test_over_ten_thousand_modules():
    model = zoo.Wide().eval()
    tree = inspect_model(model, InputSpec.parse("1x4 float32"))
    assert len(tree) > 10_000
    assert tree.total_params == zoo.unique_params(model)
    assert tree.total_flops == 2 * 4 * 4 * 2600
    assert tree["blocks.2599.0"].row() == 0 and tree["blocks.2599"].row() == 2599


def test_forward_failure_is_a_clear_error():
    model = nn.Sequential(nn.Linear(10, 2)).eval()
    with pytest.raises(StudioError, match="forward pass failed on the input spec '1x3 float32'"):
        inspect_model(model, InputSpec.parse("1x3 float32"))
    assert all(not m._forward_hooks for m in model.modules())


def test_torchscript_has_root_totals(tmp_path):
    model = zoo.TinyMobileNet().eval()
    scripted = torch.jit.script(model)
    tree = inspect_model(scripted, InputSpec.parse("1x3x16x16 float32"))
    eager = inspect_model(model, InputSpec.parse("1x3x16x16 float32"))
    assert tree.total_params == eager.total_params
    assert tree.total_flops == eager.total_flops
    assert any("TorchScript" in note for note in tree.notes)


def test_describe_shapes():
    assert describe_shapes(torch.zeros(1, 2)) == "1x2"
    assert describe_shapes((torch.zeros(1), {"a": torch.zeros(2, 3)})) == "(1, 2x3)"
    assert describe_shapes(torch.tensor(1.0)) == "scalar"
    assert describe_shapes(None) == ""


def test_quantized_layers_show_the_bytes_a_file_holds():
    """After compression the tree shows int8/int4/fp16 layers at their stored size (codes and
    scales), the same figure as the Size card, not the float copy the simulation computes with."""
    from studio.core.base.events import Finished
    from studio.core.model.measure import stored_bytes
    from studio.core.pipelines.compress import compress
    from studio.core.pipelines.opening import LoadRequest, load_model
    from studio.core.plan import CompressionPlan

    loaded = load_model(LoadRequest("sample:digits-cnn"))
    original = inspect_model(loaded.module, loaded.input_spec)
    for dtype in ("int8", "int4", "fp16"):
        plan = CompressionPlan.from_dict({"rules": [{"layers": "*", "quantize": {"dtype": dtype}}]})
        result = next(e for e in compress(loaded, plan) if isinstance(e, Finished)).result
        tree = inspect_model(result.compressed, loaded.input_spec)
        assert tree.root.bytes == stored_bytes(result.compressed) < original.root.bytes
        assert tree.root.total_params == original.root.total_params  # parameters are still parameters
        assert sum(tree.root.bytes_by_dtype.values()) == tree.root.bytes
