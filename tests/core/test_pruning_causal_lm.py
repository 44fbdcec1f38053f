"""Structured pruning of a causal LM's feed-forward neurons (Llama: gate, up and down coupled).
Torch-Pruning traces the model through its logits; the key/value cache the model also returns
used to stop the trace. The pruned model equals the original with those neurons zeroed."""

from __future__ import annotations

import pytest
import torch

from studio.core.base.events import Finished
from studio.core.model.loaders import LoadRequest
from studio.core.pipelines.compress import compress
from studio.core.pipelines.opening import load_model
from studio.core.plan import CompressionPlan
from tests.core.test_large_models import _tiny_llama
from tests.zoo import unique_params

HIDDEN, FFN, LAYERS = 32, 64, 2


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return load_model(LoadRequest(str(_tiny_llama(tmp_path_factory.mktemp("llama") / "llama"))))


def _kept_rows(pruned: torch.Tensor, original: torch.Tensor) -> list[int]:
    """Which of the original's rows each pruned row is (pruning copies rows unchanged)."""
    return [int(torch.nonzero((original == row).all(dim=1))[0]) for row in pruned]


def test_llama_ffn_neurons_go_with_their_coupled_layers(llama):
    plan = CompressionPlan.from_dict({"rules": [
        {"layers": "model.layers.*.mlp.gate_proj", "prune": {"mode": "structured", "amount": 0.5}}]})
    result = [e for e in compress(llama, plan) if isinstance(e, Finished)][0].result
    pruned, original = result.compressed, llama.module
    removed = FFN // 2
    assert unique_params(pruned) == unique_params(original) - LAYERS * 3 * HIDDEN * removed  # gate, up rows; down columns

    reference = _tiny_llama_copy(original)
    for i in range(LAYERS):
        mlp, ref = pruned.model.layers[i].mlp, reference.model.layers[i].mlp
        assert mlp.gate_proj.out_features == mlp.up_proj.out_features == mlp.down_proj.in_features == FFN - removed
        kept = _kept_rows(mlp.gate_proj.weight, original.model.layers[i].mlp.gate_proj.weight)
        assert kept == _kept_rows(mlp.up_proj.weight, original.model.layers[i].mlp.up_proj.weight)
        gone = sorted(set(range(FFN)) - set(kept))
        with torch.no_grad():
            ref.up_proj.weight[gone] = 0  # silu(gate) * 0: those neurons contribute nothing
    ids = torch.randint(0, 96, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(pruned(input_ids=ids).logits, reference(input_ids=ids).logits, atol=1e-5)
        assert not torch.equal(original(input_ids=ids).logits, reference(input_ids=ids).logits)


def _tiny_llama_copy(model):
    import copy

    return copy.deepcopy(model).eval()
