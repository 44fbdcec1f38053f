"""Issue 12, the FLOPs projection's last gaps on a small BERT: each projected total equals the
FLOPs PyTorch's counter measures on the applied model, and the differences equal hand formulas:
ALBERT's new r → d projection (2·r·d per token), a layer both head-pruned and dropped (counted
once: the whole layer), and structured FFN pruning's coupled output projection (its weight's
share, the bias kept whole)."""

from __future__ import annotations

import pytest

from studio.core.model.measure import figures
from tests.core.test_transformers import FFN, HEADS, HIDDEN, LAYERS, _compress, _loaded

BATCH, SEQ = 2, 16  # the tiny BERT's input spec (tests/core/test_transformers.SPEC)
TOKENS = BATCH * SEQ


def _projected_and_measured(rules):
    loaded = _loaded()
    result, projection = _compress(loaded, rules)
    before, after = figures(loaded.module, loaded.input_spec), figures(result.compressed, loaded.input_spec)
    assert projection.before.flops == before.flops
    return projection.after.flops, after.flops, before.flops


def _layer_flops(heads: int = HEADS, ffn: int = FFN) -> int:
    """One encoder layer by hand: q/k/v/output (2·T·d·w each), scores (QKᵀ and P·V, 2·B·S·S·w
    each) and the FFN (2·T·d·f twice), w = heads × head size."""
    width = heads * (HIDDEN // HEADS)
    return 4 * 2 * TOKENS * HIDDEN * width + 2 * 2 * BATCH * SEQ * SEQ * width + 2 * 2 * TOKENS * HIDDEN * ffn


@pytest.mark.parametrize("rank", [4, 8])
def test_albert_projection_counts_the_new_rank_to_width_projection(rank):
    projected, measured, before = _projected_and_measured(
        [{"layers": "bert.embeddings.word_embeddings", "lowrank": {"method": "albert", "rank": rank}}])
    assert projected == measured
    assert measured - before == 2 * TOKENS * rank * HIDDEN  # a lookup has none; the projection is new


def test_albert_with_int8_everywhere_projects_the_measured_flops():
    projected, measured, _ = _projected_and_measured([
        {"layers": "bert.embeddings.word_embeddings", "lowrank": {"method": "albert", "rank": 8}},
        {"layers": "*", "quantize": {"dtype": "int8"}}])
    assert projected == measured


@pytest.mark.parametrize("rules", [
    [{"layers": "bert.encoder.layer.0.attention", "heads": {"keep": 1}},
     {"layers": "bert.encoder.layer.0", "drop": True}],
    [{"layers": "bert.encoder.layer.*.attention", "heads": {"keep": 2}},
     {"layers": "bert.encoder.layer.*", "drop": {"keep_every": 2}}],
])
def test_a_layer_head_pruned_and_dropped_is_removed_once(rules):
    projected, measured, before = _projected_and_measured(rules)
    assert projected == measured
    heads = rules[0]["heads"]["keep"]
    kept_pruned = LAYERS - 1 if rules[0]["layers"].startswith("bert.encoder.layer.*") else 0
    unpruned = LAYERS - 1 - kept_pruned
    classifier = before - LAYERS * _layer_flops()
    assert measured == classifier + unpruned * _layer_flops() + kept_pruned * _layer_flops(heads=heads)


@pytest.mark.parametrize("amount", [0.25, 0.5])
def test_structured_ffn_pruning_projects_the_output_projection_without_its_bias(amount):
    projected, measured, before = _projected_and_measured(
        [{"layers": "bert.encoder.layer.*.intermediate.dense", "prune": {"mode": "structured", "amount": amount}}])
    assert projected == measured
    gone = int(FFN * amount)
    assert before - measured == LAYERS * 2 * 2 * TOKENS * HIDDEN * gone  # intermediate rows + output columns


def test_heads_ffn_and_drop_together_as_in_the_minilm_7x_recipe():
    projected, measured, _ = _projected_and_measured([
        {"layers": "bert.encoder.layer.[02].attention", "heads": {"keep": 2}},
        {"layers": "bert.encoder.layer.[02].intermediate.dense", "prune": {"mode": "structured", "amount": 0.6}},
        {"layers": "bert.encoder.layer.1", "drop": True}])
    assert projected == measured
