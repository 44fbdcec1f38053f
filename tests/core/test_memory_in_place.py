"""Compressing with less memory (issue 13): an owned model is compressed in place with the same
report as a copy, the original of a caller that keeps it is still never changed, zlib sizes are
streamed, a packed int4 layer counts the FLOPs of its logical shape, and a weight tied between two
quantized layers on one grid is stored (and counted) once."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from studio.core.base.events import Finished, StageStarted
from studio.core.model import measure
from studio.core.model.input_spec import InputSpec
from studio.core.model.inspection import inspect_model
from studio.core.model.loaded_model import LoadedModel
from studio.core.model.measure import figures, stored_bytes, zlib_size
from studio.core.pipelines.compress import compress
from studio.core.pipelines.finetune import FinetuneSettings
from studio.core.pipelines.run import run
from studio.core.plan import CompressionPlan
from studio.core.techniques import int4_packed
from studio.core.techniques.int4_packed import PackedInt4Linear
from studio.core.techniques.quant_modules import storage_bytes
from studio.core.techniques.quantization import QuantizeConfig, quantize_module

needs_kernel = pytest.mark.skipif(not int4_packed.kernel_available(), reason="this torch has no CPU int4 kernel")


class TinyLM(nn.Module):
    """A tied output layer, and sizes the int4 kernel pads (50 outputs, 100 inputs at g32)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 64)
        self.blocks = nn.Sequential(nn.Linear(64, 100), nn.GELU(), nn.Linear(100, 64))
        self.head = nn.Linear(64, 50, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, ids):
        return self.head(self.blocks(self.embed(ids)))


def _loaded(seed: int = 0) -> LoadedModel:
    torch.manual_seed(seed)
    return LoadedModel(module=TinyLM().eval(), name="tiny", source="tiny", kind="test",
                       input_spec=InputSpec.parse("1x12 int64 [0,50)"))


INT4 = {"rules": [{"layers": "*", "quantize": {"dtype": "int4", "group_size": 32}},
                  {"layers": "embed", "quantize": None}]}
INT8 = {"rules": [{"layers": "*", "quantize": {"dtype": "int8"}}]}


def _result(events):
    stages, result = [], None
    for event in events:
        if isinstance(event, StageStarted):
            stages.append(event.name)
        if isinstance(event, Finished):
            result = event.result
    return stages, result


@needs_kernel
def test_owned_compress_is_in_place_with_the_copys_report():
    kept, owned = _loaded(), _loaded()
    embed = owned.module.embed.weight
    _, by_copy = _result(compress(kept, CompressionPlan.from_dict(INT4)))
    stages, in_place = _result(compress(owned, CompressionPlan.from_dict(INT4), owned=True))
    assert stages[:3] == ["validate", "measure", "apply"]  # the original is measured before it changes
    assert in_place.compressed is owned.module  # no copy at all
    assert isinstance(owned.module.blocks[0], PackedInt4Linear) and owned.module.embed.weight is embed
    assert type(kept.module.blocks[0]) is nn.Linear  # the copy path still leaves its original alone
    a, b = by_copy.report, in_place.report
    assert a.before == b.before and a.after == b.after and a.layers == b.layers
    assert a.fidelity == b.fidelity


@pytest.fixture(scope="module")
def digits():
    from studio.core.data.sources import open_dataset
    from studio.core.pipelines.opening import LoadRequest, load_model

    return lambda: load_model(LoadRequest("sample:digits-cnn")), open_dataset


NO_FINETUNE = FinetuneSettings(epochs=0, recalibrate_bn=False)


def test_owned_run_evaluates_and_times_the_original_first_and_reports_what_a_copy_does(digits):
    load, open_dataset = digits
    kept, owned = load(), load()
    data = open_dataset("digits", kept)
    stages, in_place = _result(run(owned, CompressionPlan.from_dict(INT8), data, NO_FINETUNE, owned=True))
    assert stages == ["evaluate", "latency", "validate", "measure", "apply", "measure", "evaluate", "latency"]
    assert in_place.model is owned.module
    _, by_copy = _result(run(kept, CompressionPlan.from_dict(INT8), data, NO_FINETUNE))
    a, b = by_copy.report, in_place.report
    assert b.before.accuracy == a.before.accuracy and b.after.accuracy == a.after.accuracy
    assert (b.before.bytes, b.after.bytes, b.after.params, b.after.flops) == \
        (a.before.bytes, a.after.bytes, a.after.params, a.after.flops)
    assert b.fidelity.max_abs == pytest.approx(a.fidelity.max_abs, rel=1e-5)
    assert min(a.latency.runs, b.latency.runs) >= 21 and b.latency.before_ms > 0 and b.latency.after_ms > 0  # time-budgeted


def test_owned_is_ignored_when_fine_tuning_distils_from_the_original(digits):
    load, open_dataset = digits
    loaded = load()
    data = open_dataset("digits", loaded)
    before = {k: v.clone() for k, v in loaded.module.state_dict().items()}
    settings = FinetuneSettings(epochs=1, max_steps=2, recalibrate_bn=False)
    stages, result = _result(run(loaded, CompressionPlan.from_dict(INT8), data, settings, owned=True))
    assert stages == ["validate", "apply", "measure", "evaluate", "finetune", "latency"]
    assert result.model is not loaded.module
    assert all(torch.equal(before[k], v) for k, v in loaded.module.state_dict().items())


def test_batchnorm_re_estimation_decides_ownership_as_it_resolves_auto(digits):
    """"auto" is the model family's default, not a truthy string: a BatchNorm CNN without data (nothing
    to re-estimate on) is compressed in place; with data, its family re-estimates, so it is not."""
    load, open_dataset = digits
    auto = FinetuneSettings(epochs=0)
    assert auto.recalibrate_bn == "auto"
    loaded = load()
    stages, result = _result(run(loaded, CompressionPlan.from_dict(INT8), None, auto, owned=True))
    assert stages[:3] == ["latency", "validate", "measure"] and result.model is loaded.module
    loaded = load()
    before = {k: v.clone() for k, v in loaded.module.state_dict().items()}
    _, result = _result(run(loaded, CompressionPlan.from_dict(INT8), open_dataset("digits", loaded), auto, owned=True))
    assert result.model is not loaded.module
    assert all(torch.equal(v, before[k]) for k, v in loaded.module.state_dict().items())


def test_a_run_job_owns_the_model_it_opens(digits):
    """The window's job opens its own model (in the worker process): it is compressed in place."""
    from studio.core.base.cancel import CancelToken
    from studio.core.model.loaders import LoadRequest
    from studio.core.pipelines.jobs import RunJob

    stages, result = _result(RunJob(LoadRequest("sample:digits-cnn"), INT8, None, {}).events(CancelToken()))
    assert stages[:3] == ["open", "latency", "validate"] and result.model is result.original.module


@pytest.mark.parametrize("size", [0, 1, 1000, 5 * 7919])
def test_streamed_zlib_size_equals_zlib_of_the_bytes(monkeypatch, size):
    monkeypatch.setattr(measure, "ZLIB_CHUNK", 4096)  # many chunks, and a ragged last one
    rng = np.random.default_rng(size)
    array = np.where(rng.random(size) < 0.5, 0, rng.standard_normal(size)).astype(np.float32)
    assert zlib_size(array) == len(zlib.compress(array.tobytes(), 6))
    matrix = array[: size // 7 * 7].reshape(7, -1) if size else array
    assert zlib_size(matrix) == len(zlib.compress(matrix.tobytes(), 6))


@needs_kernel
@pytest.mark.parametrize("k, n", [(100, 50), (64, 48), (200, 10)])
def test_packed_int4_flops_are_the_logical_products(k, n):
    layer = nn.Linear(k, n)
    packed = quantize_module(layer, QuantizeConfig(dtype="int4", group_size=32))
    assert isinstance(packed, PackedInt4Linear)
    x = torch.randn(3, k)
    for model in (layer, packed):  # a real forward under torch's counter
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
        assert counter.get_total_flops() == 2 * 3 * k * n
    spec = InputSpec.parse(f"3x{k}")  # inspection's meta forward
    assert inspect_model(packed, spec).total_flops == inspect_model(layer, spec).total_flops == 2 * 3 * k * n


def _tied(head_config: dict | None, embed_config: dict | None) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(1)
    original = TinyLM()
    loaded = LoadedModel(module=original, name="tiny", source="tiny", kind="test",
                         input_spec=InputSpec.parse("1x12 int64 [0,50)"))
    rules = [{"layers": "blocks.*", "quantize": None}, {"layers": "head", "quantize": head_config},
             {"layers": "embed", "quantize": embed_config}]
    _, result = _result(compress(loaded, CompressionPlan.from_dict({"rules": rules}), batches=[]))
    return original, result.compressed


def _linear_bytes(model: nn.Module) -> int:
    return sum(p.numel() * 4 for p in model.blocks.parameters())


@pytest.mark.parametrize("config", [{"dtype": "int8"}, {"dtype": "int8", "per_channel": False},
                                    {"dtype": "fp16"}, {"dtype": "int4", "group_size": 16}])
def test_a_table_tied_between_two_quantized_layers_on_one_grid_is_counted_once(config):
    original, model = _tied(config, config)
    assert model.head.weight is model.embed.weight  # still tied: both simulated on the same Parameter
    rows, dim = 50, 64
    table = {"int8": rows * dim + 4 * (rows if config.get("per_channel", True) else 1), "fp16": 2 * rows * dim,
             "int4": math.ceil(rows * dim / 2) + 4 * rows * math.ceil(dim / 16)}[config["dtype"]]
    expected = table + _linear_bytes(model)
    assert storage_bytes(model) == stored_bytes(model) == expected
    assert figures(model, InputSpec.parse("1x12 int64 [0,50)")).bytes == expected


def test_a_tied_table_on_two_grids_or_one_float_layer_is_stored_twice():
    rows, dim = 50, 64
    _, model = _tied({"dtype": "int8"}, {"dtype": "fp16"})  # two grids: two tables
    assert storage_bytes(model) == stored_bytes(model) == (rows * dim + 4 * rows) + 2 * rows * dim \
        + _linear_bytes(model)
    _, model = _tied({"dtype": "int8"}, None)  # the float embedding still needs the float table
    assert storage_bytes(model) == stored_bytes(model) == (rows * dim + 4 * rows) + 4 * rows * dim \
        + _linear_bytes(model)


def test_the_copy_path_leaves_a_kept_original_untouched_with_tied_quantized_layers():
    original, model = _tied({"dtype": "int8"}, {"dtype": "int8"})
    assert type(original.head) is nn.Linear and type(original.embed) is nn.Embedding
    assert original.head.weight is original.embed.weight
    assert isinstance(model.head, nn.Module) and model.head is not original.head


def test_file_pages_of_replaced_weights_are_released_and_the_rest_read_back_intact(tmp_path):
    """Weights viewing one private mapping of a safetensors file (as transformers loads them): a
    replaced layer's pages go once its storage is freed; a layer still held keeps its pages."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from studio.core.pipelines.in_place import FilePages, _file_mappings

    torch.manual_seed(0)
    layers = {f"{i}.weight": torch.randn(512, 1024) for i in range(3)}  # 2 MiB each
    layers["norm"] = torch.randn(16)
    save_file(layers, str(tmp_path / "w.safetensors"))
    with safe_open(str(tmp_path / "w.safetensors"), framework="pt", backend="mmap") as f:
        model = nn.Module()
        model.blocks = nn.ModuleList(nn.Linear(1024, 512, bias=False) for _ in range(3))
        for i, block in enumerate(model.blocks):
            block.weight = nn.Parameter(f.get_tensor(f"{i}.weight"), requires_grad=False)
        model.norm = nn.Parameter(f.get_tensor("norm"), requires_grad=False)
    if not any(start <= model.blocks[0].weight.data_ptr() < end for start, end in _file_mappings()):
        pytest.skip("this safetensors does not map the file")
    pages = FilePages(model, [model.blocks[0], model.blocks[1]])
    assert pages.release_freed() == 0  # nothing freed yet
    model.blocks[0] = nn.Identity()
    released = pages.release_freed()
    assert 2 * 2**20 - 2 * 4096 <= released <= 2 * 2**20
    assert pages.close() == released  # blocks[1] is still held: its pages stay
    assert torch.equal(model.blocks[1].weight, layers["1.weight"]) and torch.equal(model.norm, layers["norm"])
    assert torch.equal(model.blocks[2].weight, layers["2.weight"])
