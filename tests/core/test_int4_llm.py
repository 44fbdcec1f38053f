"""int4 on a causal LM end to end: `studio compress MODEL --data text:FILE` with a short
fine-tuning, the report's perplexity against transformers' own loss (before: the original,
after: the saved folder reopened), and the packed folder on disk."""

from __future__ import annotations

import json
import math

import pytest
import torch

from studio.cli.main import main
from studio.core.data.sources import open_dataset
from studio.core.model.loaders import LoadRequest
from studio.core.pipelines.opening import load_model
from studio.core.techniques import int4_packed
from studio.core.techniques.int4_packed import PackedInt4Linear
from tests.core.tiny_lm import TEXT, save_tiny_llama

pytestmark = pytest.mark.skipif(not int4_packed.kernel_available(), reason="this torch has no CPU int4 kernel")

DATA = f"text:{TEXT}?window=16"
RECIPE = {"rules": [{"layers": "*", "quantize": {"dtype": "int4", "group_size": 32}},
                    {"layers": "model.embed_tokens", "quantize": None}],
          "settings": {"finetune": {"epochs": 1, "max_steps": 2, "batch_size": 8, "eval_interval": 1}}}


@pytest.fixture(scope="module")
def lm_folder(tmp_path_factory):
    """A tiny Llama (random weights) with a word-level tokenizer trained on the shipped text."""
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def _perplexity(module, windows) -> float:
    """exp(mean next-token loss) from transformers' own `labels=` loss (equal-length windows)."""
    with torch.no_grad():
        losses = [float(module(input_ids=w[None], labels=w[None]).loss) for w in windows]
    return math.exp(sum(losses) / len(losses))


def test_cli_compress_int4_with_text_data_reports_perplexity(lm_folder, tmp_path, capsys):
    recipe = tmp_path / "int4.json"
    recipe.write_text(json.dumps(RECIPE))
    out = tmp_path / "int4"
    assert main(["compress", str(lm_folder), "--recipe", str(recipe), "--out", str(out), "--data", DATA,
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["finetune"]["steps"] >= 1
    original = load_model(LoadRequest(str(lm_folder)))
    data = open_dataset(DATA, original)
    windows = [data.inputs["input_ids"][i] for i in data.val_idx]
    assert report["before"]["perplexity"] == pytest.approx(_perplexity(original.module, windows), rel=1e-5)
    assert report["before"]["loss"] == pytest.approx(math.log(report["before"]["perplexity"]), rel=1e-6)
    reopened = load_model(LoadRequest(str(out)))
    layers = [m for m in reopened.module.modules() if isinstance(m, PackedInt4Linear)]
    assert len(layers) == 2 * 7 + 1  # q, k, v, o, gate, up, down per block, and lm_head
    assert report["after"]["perplexity"] == pytest.approx(_perplexity(reopened.module, windows), rel=1e-5)
    assert report["after"]["perplexity"] != report["before"]["perplexity"]
    assert report["after"]["bytes"] < report["before"]["bytes"] / 2
    assert main(["inspect", str(out), "--json"]) == 0  # the tree of the reopened folder
    assert json.loads(capsys.readouterr().out)["total_params"] == report["after"]["params"] == report["before"]["params"]


def test_text_summary_shows_the_perplexity_row(lm_folder, tmp_path, capsys):
    recipe = tmp_path / "int4.json"
    recipe.write_text(json.dumps({"rules": RECIPE["rules"]}))
    assert main(["compress", str(lm_folder), "--recipe", str(recipe), "--out", str(tmp_path / "o"),
                 "--data", DATA]) == 0
    text = capsys.readouterr().out
    assert "Perplexity" in text  # the before/after row, from the report
