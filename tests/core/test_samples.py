"""The bundled samples are real trained models: their accuracy is measured, not assumed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from studio.core.data.digits import digits_split
from studio.core.data.rotten_tomatoes import load_snippets, snippets_split
from studio.core.pipelines.opening import LoadRequest, load_model

ROOT = Path(__file__).resolve().parents[2]


def test_digits_cnn_accuracy_on_held_out_split():
    model = load_model(LoadRequest("sample:digits-cnn")).module
    data = digits_split()
    with torch.no_grad():
        accuracy = (model(data.x_test).argmax(1) == data.y_test).float().mean().item()
    assert len(data.y_test) == 450
    assert accuracy >= 0.98  # the training script prints 0.9911


def test_digits_training_is_deterministic(tmp_path):
    """The training script is seeded: two runs give the same weights bit for bit, of the shipped
    layout and accuracy. (Bit-identity with the shipped file holds only on the CPU kernels that
    trained it: float reductions differ between instruction sets.)"""
    import re
    import subprocess
    import sys

    from safetensors.torch import load_file

    from studio.core.model.samples.digits_cnn import WEIGHTS

    fresh = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.safetensors"
        result = subprocess.run([sys.executable, str(ROOT / "scripts" / "train_digits_cnn.py"), "--out", str(out)],
                                capture_output=True, text=True, check=True, timeout=600)
        assert float(re.search(r"test accuracy: ([0-9.]+)", result.stdout).group(1)) >= 0.98
        fresh.append(load_file(str(out)))
    shipped = load_file(str(WEIGHTS))
    assert shipped.keys() == fresh[0].keys() == fresh[1].keys()
    assert all(shipped[k].shape == fresh[0][k].shape for k in shipped)
    assert all(torch.equal(fresh[0][k], fresh[1][k]) for k in shipped)


def test_snippets_data_and_split():
    rows = load_snippets()
    assert len(rows) == 12808 and {label for _, label in rows} == {0, 1}
    split = snippets_split()
    assert len(split.train) == 10246 and len(split.test) == 2562
    assert sorted(split.train + split.test) == sorted(rows)  # a partition of the data
    assert snippets_split() == split  # the same split every time


@pytest.mark.slow
def test_minilm_sentiment_beats_majority_on_held_out_snippets():
    from studio.core.model.samples.minilm_sentiment import load_tokenizer

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
