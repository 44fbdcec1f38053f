"""The budget strip shows the layers a pattern rule skips as a warning (amber, the plan still
runs), not as a problem; the projection leaves them out as the run will."""

from __future__ import annotations

from studio.core.plan import CompressionPlan


def test_skipped_layers_are_a_warning_in_the_budget_strip(qtbot, digits_window):
    window = digits_window
    window.plan.document.set_plan(CompressionPlan.from_dict(
        {"rules": [{"layers": "*", "prune": {"mode": "structured", "amount": 0.5}}]}))
    qtbot.waitUntil(lambda: window.plan.projection is not None and bool(window.plan.projection.warnings), timeout=10000)
    text, tip = window.plan.budget.text(), window.plan.budget.toolTip()
    assert "Skipped:" in text and "Problem:" not in text and "#9a6700" in text
    assert "rule 1 (*): skipped 2 layer(s) that pruning (structured 50% l2) cannot take" in text
    assert "(classifier.4)" in tip and "features.3.depthwise.0" in tip
    projected = {n for n, layer in window.plan.projection.layers.items() if not layer.coupled}
    assert projected == {"features.0.0", "features.1.0", "features.3.pointwise.0", "classifier.1"}

    window.plan.document.set_plan(CompressionPlan.from_dict(
        {"rules": [{"layers": "*.depthwise.*", "prune": {"mode": "structured", "amount": 0.5}}]}))
    text = window.plan.budget.text()
    assert "Problem:" in text and "matches no layer that pruning (structured 50% l2) can take" in text
    assert "Skipped:" not in text
