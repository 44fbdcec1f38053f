"""Validation metrics scored batch by batch (evaluate.MetricSums / validation_metrics) equal the
same formulas on the concatenated outputs, whatever the batching of the outputs and the reference;
only outputs asked for are kept; check_fits checks shapes on the meta device (no weight read) and
still words the errors of a real forward."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from studio.core.base.cancel import CancelToken
from studio.core.base.errors import StudioError
from studio.core.base.events import EvaluationProgress
from studio.core.data.dataset import Dataset, split_indices
from studio.core.pipelines.evaluate import iter_predict, metrics_from, validation_metrics


def _classifier_data(n: int = 53) -> Dataset:
    torch.manual_seed(1)
    train, val = split_indices(n)
    return Dataset("toy", {"x": torch.randn(n, 6)}, torch.randint(0, 4, (n,)), False, train, val)


def _independent(outputs: list[torch.Tensor], reference: list[torch.Tensor], labels: torch.Tensor) -> dict:
    o, r = torch.cat(outputs).double(), torch.cat(reference).double()
    return {"loss": float(F.cross_entropy(o, labels, reduction="mean")),
            "accuracy": float((o.argmax(-1) == labels).double().mean()),
            "cosine": float(F.cosine_similarity(o, r, dim=-1).mean()),
            "agreement": float((o.argmax(-1) == r.argmax(-1)).double().mean()),
            "kl": float(F.kl_div(F.log_softmax(o, -1), F.log_softmax(r, -1), log_target=True, reduction="batchmean"))}


def test_classifier_metrics_equal_the_concatenated_formulas_across_batchings():
    data = _classifier_data()
    torch.manual_seed(2)
    model, original = nn.Linear(6, 4), nn.Linear(6, 4)
    labels = torch.cat([y for _, _, y in data.batches("val", 5)])
    reference = list(iter_predict(original, data, "val", 7))  # batched otherwise than the outputs
    outputs = list(iter_predict(model, data, "val", 5))
    got = metrics_from(outputs, data, "val", 5, reference=reference)
    expected = _independent(outputs, reference, labels)
    assert got.samples == len(data.val_idx)
    for key, value in expected.items():
        assert getattr(got, key) == pytest.approx(value, rel=1e-5, abs=1e-7), key


def test_token_outputs_cosine_is_per_sample_over_all_positions():
    torch.manual_seed(3)
    outputs = [torch.randn(3, 5, 11), torch.randn(2, 5, 11)]
    reference = [torch.randn(4, 5, 11), torch.randn(1, 5, 11)]
    data = Dataset("toy", {"x": torch.randn(12, 5, 11)}, None, False, torch.arange(7), torch.arange(7, 12))
    got = metrics_from(outputs, data, "val", 3, reference=reference)
    flat_o = torch.cat(outputs).reshape(5, -1)
    flat_r = torch.cat(reference).reshape(5, -1)
    assert got.cosine == pytest.approx(float(F.cosine_similarity(flat_o, flat_r, dim=-1).mean()), abs=1e-6)
    assert got.agreement is None and got.kl is None and got.loss is None  # 3-D outputs: cosine only, as before


def test_validation_metrics_keeps_only_what_is_asked():
    data = _classifier_data()
    model = nn.Linear(6, 4)
    seen: list[object] = []
    metrics, kept = _drain(validation_metrics(model, data, CancelToken(), "test", 8, keep=True), seen)
    assert [e.step for e in seen if isinstance(e, EvaluationProgress)] == list(range(1, data.steps("val", 8) + 1))
    expected = list(iter_predict(model, data, "val", 8))
    assert len(kept) == len(expected) and all(torch.equal(a, b) for a, b in zip(kept, expected))
    assert metrics == metrics_from(expected, data, "val", 8)
    again = _drain(validation_metrics(model, data, CancelToken(), "test", 8, reference=expected))
    assert again[1] is None and again[0].cosine == pytest.approx(1.0, abs=1e-6) and again[0].agreement == 1.0


def _drain(events, seen: list[object] | None = None):
    while True:
        try:
            event = next(events)
        except StopIteration as stop:
            return stop.value
        if seen is not None:
            seen.append(event)


class _Probe(nn.Module):
    """Records whether it ever ran on real (not meta) tensors."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.layer = nn.Linear(6, classes)
        self.real_calls = 0

    def forward(self, x):
        if not x.is_meta:
            type(self).real_calls += 1
        return self.layer(x)


def test_check_fits_reads_no_weight_when_shapes_tell():
    from studio.core.data.checks import check_fits
    from studio.core.model.input_spec import InputSpec
    from studio.core.model.loaded_model import LoadedModel

    _Probe.real_calls = 0
    data = _classifier_data()
    loaded = LoadedModel(module=_Probe(), name="probe", source="probe", kind="test",
                         input_spec=InputSpec.parse("1x6 float32"))
    assert check_fits(data, loaded) is data and _Probe.real_calls == 0
    with pytest.raises(StudioError, match="outside the model's 3 classes"):
        check_fits(data, LoadedModel(module=_Probe(3), name="probe", source="probe", kind="test",
                                     input_spec=InputSpec.parse("1x6 float32")))
    wide = Dataset("wide", {"x": torch.randn(9, 7)}, None, False, *split_indices(9))
    with pytest.raises(StudioError, match="does not fit probe"):  # the real forward words the error
        check_fits(wide, loaded)
    assert _Probe.real_calls == 1  # the meta forward failed, so the real one ran to word the error


def test_check_fits_on_a_causal_lm_runs_on_meta_and_still_catches_ids_beyond_the_vocabulary():
    from transformers import LlamaConfig, LlamaForCausalLM

    from studio.core.data.checks import check_fits
    from studio.core.model.input_spec import InputSpec
    from studio.core.model.loaded_model import LoadedModel

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32)
    module = LlamaForCausalLM(config).eval()
    real = []
    module.model.embed_tokens.register_forward_pre_hook(lambda m, args: real.append(not args[0].is_meta))
    loaded = LoadedModel(module=module, name="tiny-lm", source="tiny", kind="test",
                         input_spec=InputSpec.parse("1x8 int64 [0,40)"))

    def windows(top: int) -> Dataset:
        ids = torch.randint(0, top, (6, 8))
        return Dataset("text:toy", {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, None, True,
                       *split_indices(6))

    assert check_fits(windows(40), loaded) is not None and real == [False]  # one forward, on meta tensors
    with pytest.raises(StudioError, match="does not fit tiny-lm"):
        check_fits(windows(1000), loaded)  # ids past the table: the real forward fails, with the clear error
    assert real[-1] is True
