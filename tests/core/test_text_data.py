"""`text:PATH` data for causal LMs: perplexity against transformers' own `labels=` loss, the
distillation and sensitivity metrics on token logits, and one clear error per bad text file."""

from __future__ import annotations

import math

import pytest
import torch

from studio.core.base.errors import StudioError
from studio.core.data.sources import open_dataset
from studio.core.model.loaders import LoadRequest
from studio.core.pipelines.opening import load_model
from tests.core.tiny_lm import TEXT, save_tiny_llama

WINDOW = 16


@pytest.fixture(scope="module")
def causal_lm(tmp_path_factory):
    """A tiny Llama with a word-level tokenizer trained on the shipped text (offline)."""
    return load_model(LoadRequest(str(save_tiny_llama(tmp_path_factory.mktemp("tiny-lm"), hidden=32,
                                                      intermediate=64))))


def _dataset(loaded, path=TEXT, window=WINDOW):
    return open_dataset(f"text:{path}?window={window}", loaded)


def test_windows_are_the_tokenized_text(causal_lm):
    data = _dataset(causal_lm)
    ids = data.inputs["input_ids"]
    assert ids.shape[1] == WINDOW and len(ids) >= 20
    assert torch.equal(data.inputs["attention_mask"], torch.ones_like(ids))
    words = causal_lm_tokenizer(causal_lm)(TEXT.read_text(), add_special_tokens=False)["input_ids"]
    assert ids.flatten().tolist() == words[: ids.numel()]
    assert len(data.train_idx) and len(data.val_idx) and not data.labeled


def causal_lm_tokenizer(loaded):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(loaded.source, local_files_only=True)


def test_perplexity_equals_transformers_labels_loss(causal_lm):
    from studio.core.pipelines.evaluate import iter_predict, metrics_from

    data = _dataset(causal_lm)
    outputs = list(iter_predict(causal_lm.module, data, "val", 4))
    metrics = metrics_from(outputs, data, "val", 4)
    losses = []
    with torch.no_grad():
        for row in data.val_idx:
            window = data.inputs["input_ids"][row][None]
            losses.append(float(causal_lm.module(input_ids=window, labels=window).loss))
    reference = sum(losses) / len(losses)  # equal-length windows: mean of means = mean over tokens
    assert metrics.loss == pytest.approx(reference, rel=1e-5)
    assert metrics.perplexity == pytest.approx(math.exp(reference), rel=1e-5)
    assert metrics.task_metric == "perplexity"
    better = metrics_from([o * 0 for o in outputs], data, "val", 4)  # uniform logits: perplexity = vocab
    assert better.perplexity == pytest.approx(causal_lm.module.config.vocab_size, rel=1e-4)
    assert (metrics.key() > better.key()) == (metrics.perplexity < better.perplexity)


def test_sensitivity_scores_negated_log_perplexity(causal_lm):
    from studio.core.pipelines.evaluate import iter_predict, metrics_from
    from studio.core.pipelines.sensitivity.engine import Scorer, forward_all, sample_batches

    data = _dataset(causal_lm)
    batches, labels = sample_batches(data, samples=len(data.val_idx), batch_size=4)
    scorer = Scorer.from_reference(forward_all(causal_lm.module, batches), labels)
    metrics = metrics_from(list(iter_predict(causal_lm.module, data, "val", 4)), data, "val", 4)
    assert scorer.metric == "-log perplexity"
    assert scorer.score(scorer.reference) == pytest.approx(-math.log(metrics.perplexity), rel=1e-5)


def test_distillation_on_token_logits_is_a_per_token_mean():
    from torch.nn import functional as F

    from studio.core.pipelines.finetune import distillation_loss

    torch.manual_seed(0)
    student, teacher = torch.randn(2, 5, 11), torch.randn(2, 5, 11)
    expected = F.kl_div(F.log_softmax(student.reshape(10, 11), -1), F.log_softmax(teacher.reshape(10, 11), -1),
                        log_target=True, reduction="sum") / 10
    assert float(distillation_loss(student, teacher, None, 0.5, 1.0)) == pytest.approx(float(expected), rel=1e-5)
    assert float(distillation_loss(teacher, teacher, None, 0.5, 2.0)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"   \n\t\n", "only whitespace"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "binary file"),
    ("caf\u00e9".encode("latin-1") * 50, "not UTF-8"),
    (b"It is a truth universally acknowledged.", "at least two"),
])
def test_bad_text_files_give_one_clear_error(causal_lm, tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(StudioError, match=message):
        _dataset(causal_lm, path)


def test_bad_text_specs(causal_lm, tmp_path):
    with pytest.raises(StudioError, match="no such file"):
        open_dataset(f"text:{tmp_path / 'missing.txt'}", causal_lm)
    with pytest.raises(StudioError, match="not a folder"):
        open_dataset(f"text:{tmp_path}", causal_lm)
    with pytest.raises(StudioError, match="window takes"):
        open_dataset(f"text:{TEXT}?window=2", causal_lm)
    with pytest.raises(StudioError, match="unknown option"):
        open_dataset(f"text:{TEXT}?stride=4", causal_lm)


def test_text_needs_a_causal_lm_tokenizer(tmp_path):
    """A model with no tokenizer in its folder: the one sentence that says so."""
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(tmp_path / "bert")
    with pytest.raises(StudioError, match="no usable tokenizer"):
        open_dataset(f"text:{TEXT}", load_model(LoadRequest(str(tmp_path / "bert"))))
