"""Memory of the compressed model's measure stage (issue 13): the int4 kernel operands are built
right after apply (not among the first forward's activations), the kernel weight of a layer is
allocated whole before its chunks' temporaries, fidelity is summed over slices of the outputs
(no full-size difference or product) and equals an independent float64 computation, and the
heap trim is harmless."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from studio.core.base.events import Finished, StageStarted
from studio.core.model import measure
from studio.core.model.input_spec import InputSpec
from studio.core.model.loaded_model import LoadedModel
from studio.core.pipelines.compress import compress
from studio.core.pipelines.in_place import trim_heap
from studio.core.plan import CompressionPlan
from studio.core.techniques import int4_packed
from studio.core.techniques.int4_packed import PackedInt4Linear, build_kernels
from studio.core.techniques.quantization import QuantizeConfig, quantize_module
from tests.core.tiny_lm import TEXT, save_tiny_llama

needs_kernel = pytest.mark.skipif(not int4_packed.kernel_available(), reason="this torch has no CPU int4 kernel")


def _reference_fidelity(refs, outs):
    a = torch.cat([r.reshape(-1) for r in refs]).double()
    b = torch.cat([o.reshape(-1) for o in outs]).double()
    return float((a - b).abs().max()), float((a * b).sum() / (a.norm() * b.norm()))


@pytest.mark.parametrize("chunk", [7, 1 << 20])
def test_sliced_fidelity_equals_the_whole_outputs_formula(monkeypatch, chunk):
    monkeypatch.setattr(measure, "FIDELITY_CHUNK", chunk)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 30), nn.Tanh(), nn.Linear(30, 5))
    other = nn.Sequential(nn.Linear(12, 30), nn.Tanh(), nn.Linear(30, 5))
    batches = [((torch.randn(n, 12),), {}) for n in (4, 9, 1)]
    refs = measure.reference_outputs(model, batches)
    with torch.no_grad():
        outs = [other(*a) for a, _ in batches]
    fid = measure.fidelity_to(refs, other, batches)
    max_abs, cosine = _reference_fidelity(refs, outs)
    assert fid.max_abs == pytest.approx(max_abs, rel=1e-6)
    assert fid.cosine == pytest.approx(cosine, rel=1e-6)
    agree = sum(int((r.argmax(-1) == o.argmax(-1)).sum()) for r, o in zip(refs, outs))
    assert fid.top1_agreement == agree / 14 and fid.samples == 14
    assert measure.fidelity_to(refs, model, batches).cosine == pytest.approx(1.0, abs=1e-6)


def test_sliced_fidelity_of_token_outputs_and_bf16_references(monkeypatch):
    monkeypatch.setattr(measure, "FIDELITY_CHUNK", 5)
    torch.manual_seed(1)
    model = nn.Linear(6, 11)
    batches = [((torch.randn(2, 3, 6),), {})]
    refs = [r.to(torch.bfloat16) for r in measure.reference_outputs(nn.Linear(6, 11), batches)]
    with torch.no_grad():
        outs = [model(*batches[0][0])]
    fid = measure.fidelity_to(refs, model, batches)
    max_abs, cosine = _reference_fidelity(refs, outs)
    assert fid.max_abs == pytest.approx(max_abs, rel=1e-6) and fid.cosine == pytest.approx(cosine, rel=1e-6)
    assert fid.top1_agreement is None and fid.samples == 6  # 3-D: no agreement reported, positions counted


@needs_kernel
def test_build_kernels_builds_every_packed_layer_once_and_outputs_do_not_change():
    torch.manual_seed(2)
    float_model = nn.Sequential(nn.Linear(128, 300), nn.ReLU(), nn.Linear(300, 64), nn.ReLU(), nn.Linear(64, 10))
    x = torch.randn(3, 128)
    config = QuantizeConfig(dtype="int4", group_size=32)

    def packed():
        model = nn.Sequential(*[quantize_module(m, config) if isinstance(m, nn.Linear)
                                else m for m in float_model])
        return model.eval()

    lazy, eager = packed(), packed()
    layers = [m for m in eager.modules() if isinstance(m, PackedInt4Linear)]
    assert len(layers) == 3 and all(m._kernel_weight.numel() == 0 for m in layers)
    calls = []
    assert build_kernels(eager, lambda: calls.append(1)) == 3 and len(calls) == 3
    weights = [m._kernel_weight for m in layers]
    assert all(w.numel() > 0 for w in weights)
    with torch.no_grad():
        assert torch.equal(eager(x), lazy(x))
    assert all(m._kernel_weight is w for m, w in zip(layers, weights))  # not rebuilt by the forward
    trim_heap()
    trim_heap()


@needs_kernel
def test_chunked_kernel_weight_is_the_single_chunk_one(monkeypatch):
    layer = quantize_module(nn.Linear(64, 200), QuantizeConfig(dtype="int4", group_size=64))
    whole = layer._pack(208, 64)
    monkeypatch.setattr(int4_packed, "ROWS", 32)
    chunked = layer._pack(208, 64)
    assert torch.equal(chunked, whole) and chunked.is_contiguous()


@needs_kernel
@pytest.mark.parametrize("owned", [False, True])
def test_compress_builds_the_kernels_before_measuring(owned, monkeypatch):
    torch.manual_seed(3)
    module = nn.Sequential(nn.Linear(64, 96), nn.ReLU(), nn.Linear(96, 10)).eval()
    loaded = LoadedModel(module=module, name="mlp", source="mlp", kind="test", input_spec=InputSpec.parse("1x64"))
    built_in = []  # the stage each real (not meta: inspection's copy) kernel weight was built in
    original_pack = PackedInt4Linear._pack
    stage = {"name": None}

    def spy(self, n_pad, k_pad):
        if not self.qweight.is_meta:
            built_in.append(stage["name"])
        return original_pack(self, n_pad, k_pad)

    monkeypatch.setattr(PackedInt4Linear, "_pack", spy)
    plan = CompressionPlan.from_dict({"rules": [{"layers": "*", "quantize": {"dtype": "int4", "group_size": 32}}]})
    result = None
    for event in compress(loaded, plan, owned=owned):
        if isinstance(event, StageStarted):
            stage["name"] = event.name
        elif isinstance(event, Finished):
            result = event.result
    assert result is not None and built_in == ["apply", "apply"]
    assert result.report.fidelity.cosine > 0.99


class _Cached(nn.Module):
    """Records the use_cache it was called with (a causal LM builds its key/value cache unless told not to)."""

    def __init__(self):
        super().__init__()
        self.linear, self.calls = nn.Linear(4, 3), []

    def forward(self, x, use_cache=True):
        self.calls.append(use_cache)
        return {"logits": self.linear(x), "cache": torch.zeros(2) if use_cache else None}


def test_reference_and_fidelity_forwards_build_no_key_value_cache():
    model, plain = _Cached(), nn.Linear(4, 3)
    batches = [((torch.randn(2, 4),), {}), ((torch.randn(1, 4),), {"use_cache": True})]  # an explicit value wins
    refs = measure.reference_outputs(model, batches)
    assert model.calls == [False, True] and torch.equal(refs[0], model.linear(batches[0][0][0]).detach())
    assert measure.fidelity(model, model, batches).cosine == pytest.approx(1.0)
    assert model.calls[2:] == [False, False, True, True]  # original then compressed, batch by batch
    plain_batches = [((torch.randn(2, 4),), {})]
    assert measure.fidelity_to(measure.reference_outputs(plain, plain_batches), plain, plain_batches).max_abs == 0


def test_kept_outputs_are_found_only_for_the_same_inputs():
    from studio.core.pipelines.compress import kept_outputs_for

    x, y = torch.arange(6).reshape(2, 3), torch.ones(2, 3, dtype=torch.long)
    kept = [(((x,), {"mask": y}), torch.zeros(1)), (((y,), {"mask": y}), torch.ones(1))]
    found = kept_outputs_for([((y.clone(),), {"mask": y}), ((x,), {"mask": y})], kept)
    assert found is not None and found[0] is kept[1][1] and found[1] is kept[0][1]
    assert kept_outputs_for([((x[:, :2],), {"mask": y[:, :2]})], kept) is None  # another length: not the same forward
    assert kept_outputs_for([((x.float(),), {"mask": y})], kept) is None
    assert kept_outputs_for([((x,), {})], kept) is None


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    folder = save_tiny_llama(tmp_path_factory.mktemp("tiny-llama-heap"))
    return folder, f"text:{TEXT}?window=16"


@needs_kernel
def test_owned_run_reuses_the_validation_outputs_as_the_fidelity_reference(tiny_lm, monkeypatch):
    from studio.core.data.sources import open_dataset
    from studio.core.pipelines import compress as compress_module
    from studio.core.pipelines.finetune import FinetuneSettings
    from studio.core.pipelines.opening import LoadRequest, load_model
    from studio.core.pipelines.run import run

    folder, data = tiny_lm
    plan = CompressionPlan.from_dict({"rules": [{"layers": "*", "quantize": {"dtype": "int4", "group_size": 32}},
                                                {"layers": "model.embed_tokens", "quantize": None}]})
    settings = FinetuneSettings(epochs=0)
    reports = {}
    for owned in (False, True):
        loaded = load_model(LoadRequest(str(folder)))
        dataset = open_dataset(data, loaded)
        assert dataset.steps("val", 32) == 1  # one validation batch: the fidelity batch is that batch
        calls = []
        real = compress_module.reference_outputs
        monkeypatch.setattr(compress_module, "reference_outputs", lambda *a: calls.append(1) or real(*a))
        result = next(e.result for e in run(loaded, plan, dataset, settings, owned=owned) if isinstance(e, Finished))
        assert calls == []  # the copy path compares with the live original; the owned one reuses its outputs
        reports[owned] = result.report
    assert reports[True].fidelity == reports[False].fidelity
    timeless = [dataclasses.replace(reports[o].after, latency_ms=None) for o in (True, False)]
    assert timeless[0] == timeless[1]  # perplexity, bytes, params, FLOPs (times differ run to run)
