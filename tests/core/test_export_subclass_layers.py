"""Conv2d/Linear subclasses (TF-"same" padding in forward, a post-scale) count as what they
compute everywhere: every technique keeps what the subclass adds or refuses the layer before
anything runs, and the export restores the subclass."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from studio.core.pipelines.compress import compress, validate
from studio.core.base.errors import StudioError
from studio.core.base.events import Finished
from studio.core.model.input_spec import InputSpec
from studio.core.model.inspection import flops_by_kind, inspect_model, layer_kind
from studio.core.model.loaded_model import LoadedModel
from studio.core.plan import CompressionPlan
from studio.core.techniques.base import ApplyContext
from studio.core.techniques.quantization import Quantize, QuantizeConfig
from tests.zoo import SamePadConv2d, ScaledLinear, SubclassedMobileNet

SPEC = InputSpec.parse("2x3x16x16 float32")


@pytest.fixture()
def loaded():
    torch.manual_seed(0)
    model = SubclassedMobileNet().eval()
    return LoadedModel(model, "sub", "sub", "factory", SPEC)


def _compressed(loaded, rules):
    events = list(compress(loaded, CompressionPlan.from_dict({"rules": rules})))
    return events[-1].result.compressed


def test_subclasses_count_as_their_op(loaded):
    model = loaded.module
    assert layer_kind(model.stem) == "Conv2d" and layer_kind(model.head) == "Linear"
    kinds = flops_by_kind(model, inspect_model(model, SPEC))
    assert kinds["Conv2d"] > kinds["Linear"] > 0
    from studio.core.pipelines.export.pipeline import conv_heavy

    assert conv_heavy(model, loaded)


def _grid_weights_(module: nn.Module) -> None:
    """Weights exactly on the per-channel int8 grid (scale 1/64): int8 is then lossless."""
    with torch.no_grad():
        w = torch.randint(-127, 128, module.weight.shape).float()
        w.view(w.shape[0], -1)[:, 0] = 127
        module.weight.copy_(w / 64)


def test_quantized_subclass_keeps_its_forward_exactly(loaded):
    """int8 weight-only on grid weights is exact, so outputs must match the float model —
    they would not if the quantized layer dropped the subclass's padding or scale."""
    model = loaded.module
    for name in ("stem", "dw", "project", "head"):
        _grid_weights_(model.get_submodule(name))
    x = torch.randn(2, 3, 16, 16)
    expected = model(x)
    rules = [{"layers": "*", "quantize": {"dtype": "int8", "activations": None}}]
    compressed = _compressed(loaded, rules)
    assert type(compressed.stem).__name__ == "QuantConv2d"
    torch.testing.assert_close(compressed(x), expected, rtol=1e-5, atol=1e-5)
    assert compressed.stem.weight is compressed.stem.float_module.weight
    from studio.core.pipelines.export.prepare import float_copy

    restored, marks = float_copy(compressed)
    assert isinstance(restored.stem, SamePadConv2d) and isinstance(restored.head, ScaledLinear)
    assert set(marks) == {"stem", "dw", "project", "head"}
    torch.testing.assert_close(restored(x), expected)


def test_static_int8_on_subclasses_calibrates_and_stays_close(loaded):
    x = torch.randn(2, 3, 16, 16)
    expected = loaded.module(x)
    compressed = _compressed(loaded, [{"layers": "*", "quantize": {"dtype": "int8", "activations": "static"}}])
    assert compressed.stem.calibrated and compressed(x).shape == expected.shape
    assert torch.nn.functional.cosine_similarity(compressed(x).flatten(), expected.flatten(), dim=0) > 0.99


def test_subclass_with_extra_state_is_refused_before_anything_runs():
    class Scaled(nn.Conv2d):
        def __init__(self):
            super().__init__(3, 4, 3)
            self.gain = nn.Parameter(torch.ones(1))

        def forward(self, x):
            return super().forward(x) * self.gain

    problems = Quantize().check("c", Scaled(), QuantizeConfig())
    assert problems and "gain" in problems[0] and "quantize: null" in problems[0]
    model = nn.Sequential(Scaled())
    with pytest.raises(StudioError, match="gain"):
        list(Quantize().apply_(model, {"0": QuantizeConfig()}, ApplyContext(((torch.randn(1, 3, 8, 8),), {}))))
    assert isinstance(model[0], Scaled)


def test_lowrank_at_full_rank_matches_or_refuses_clearly(loaded):
    model = loaded.module
    x = torch.randn(2, 3, 16, 16)
    expected = model(x)
    # The 1x1 subclass pads nothing: its forward is the plain op, so it is accepted, and SVD at
    # full rank reproduces it exactly.
    from studio.core.techniques.lowrank import LowRank, LowRankConfig, LowRankConv1x1

    assert LowRank().supports(model.project) and not LowRank().check("project", model.project,
                                                                     LowRankConfig("svd", rank=3))
    full = LowRankConv1x1.from_conv(model.project, 8)
    h = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(full(h), model.project(h), rtol=1e-4, atol=1e-4)
    compressed = _compressed(loaded, [{"layers": "project", "lowrank": {"method": "svd", "rank": 3}}])
    assert type(compressed.project).__name__ == "LowRankConv1x1" and compressed(x).shape == expected.shape
    # The 3x3 stem pads in forward and the head scales: a factorized layer would drop that.
    plan = CompressionPlan.from_dict({"rules": [{"layers": "stem", "lowrank": {"method": "tucker", "rank": 2}},
                                                {"layers": "head", "lowrank": {"method": "svd", "rank": 2}}]})
    with pytest.raises(StudioError) as info:
        validate(loaded, plan)
    text = str(info.value)
    assert "stem" in text and "head" in text and "own forward" in text and "lowrank: null" in text


@pytest.mark.parametrize("mode", ["unstructured", "structured", "2:4"])
def test_pruning_keeps_the_subclass(loaded, mode):
    x = torch.randn(2, 3, 16, 16)
    amount = {"2:4": {}, "unstructured": {"amount": 0.5}, "structured": {"amount": 0.25}}[mode]
    layers = "project" if mode != "2:4" else "head"
    compressed = _compressed(loaded, [{"layers": layers, "prune": {"mode": mode, **amount}}])
    layer = compressed.get_submodule(layers)
    assert type(layer) is type(loaded.module.get_submodule(layers))
    assert compressed(x).shape == (2, 5)
    if mode == "structured":
        assert layer.out_channels == 6 and compressed.bn2.num_features == 6
    else:
        assert float((layer.weight == 0).float().mean()) >= 0.5


def test_a_broken_replacement_is_blamed_not_the_input_spec(loaded):
    from studio.core.techniques.quant_modules import QuantConv2d

    model = loaded.module
    broken = QuantConv2d.from_float(model.stem, QuantizeConfig())
    broken.keep_subclass_(None)
    broken.groups = 2  # a replacement built wrong: its conv no longer fits its input
    model.stem = broken
    with pytest.raises(StudioError) as info:
        inspect_model(model, SPEC)
    assert "layer" in str(info.value) and "compression broke" in str(info.value)
    assert "input spec" not in str(info.value)
