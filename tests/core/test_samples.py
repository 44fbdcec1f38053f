"""The bundled samples are real trained models: their accuracy is measured, not assumed."""

from __future__ import annotations

import pytest
import torch

from studio.core.data.digits import digits_split
from studio.core.data.rotten_tomatoes import load_snippets, snippets_split
from studio.core.loaders import LoadRequest, load_model


def test_digits_cnn_accuracy_on_held_out_split():
    model = load_model(LoadRequest("sample:digits-cnn")).module
    data = digits_split()
    with torch.no_grad():
        accuracy = (model(data.x_test).argmax(1) == data.y_test).float().mean().item()
    assert len(data.y_test) == 450
    assert accuracy >= 0.98  # the training script prints 0.9911


def test_digits_training_is_deterministic(tmp_path):
    """Re-running the training script reproduces the shipped weights bit for bit."""
    import subprocess
    import sys

    from safetensors.torch import load_file

    from studio.core.samples.digits_cnn import WEIGHTS

    out = tmp_path / "w.safetensors"
    result = subprocess.run([sys.executable, "-m", "studio.core.samples.train_digits_cnn", "--out", str(out)],
                            capture_output=True, text=True, check=True)
    assert "test accuracy: 0.99" in result.stdout
    shipped, fresh = load_file(str(WEIGHTS)), load_file(str(out))
    assert shipped.keys() == fresh.keys()
    assert all(torch.equal(shipped[k], fresh[k]) for k in shipped)


def test_snippets_data_and_split():
    rows = load_snippets()
    assert len(rows) == 12808 and {label for _, label in rows} == {0, 1}
    split = snippets_split()
    assert len(split.train) == 10246 and len(split.test) == 2562
    assert sorted(split.train + split.test) == sorted(rows)  # a partition of the data
    assert snippets_split() == split  # the same split every time


@pytest.mark.slow
def test_minilm_sentiment_beats_majority_on_held_out_snippets():
    from studio.core.samples.minilm_sentiment import load_tokenizer

    loaded = load_model(LoadRequest("sample:minilm-sentiment"))
    model = loaded.module
    assert sum(p.numel() for p in model.bert.parameters()) == 22_713_216
    test = snippets_split().test[:400]
    enc = load_tokenizer()([t for t, _ in test], padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        pred = model(enc["input_ids"], enc["attention_mask"]).argmax(1)
    labels = torch.tensor([y for _, y in test])
    accuracy = (pred == labels).float().mean().item()
    majority = max(labels.float().mean().item(), 1 - labels.float().mean().item())
    assert accuracy >= 0.72 and accuracy > majority + 0.1
