"""int8 export details: 7-bit weights where ONNX Runtime's u8×s8 kernels saturate, and the
layers `auto` tries in float chosen from a sensitivity sweep."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from studio.core.base.errors import StudioError
from studio.core.base.events import Finished
from studio.core.data.sources import open_dataset
from studio.core.pipelines.export import ExportRequest, export
from studio.core.pipelines.export import onnx_export
from studio.core.pipelines.export.fragile import HEURISTIC_NOTE, load_sweep, sweep_layers
from studio.core.model.input_spec import InputSpec
from studio.core.pipelines.opening import LoadRequest, load_model
from studio.core.pipelines.sensitivity import SensitivityCell, SensitivityResult, SweepSetting, SweepSpec, sweep


@pytest.fixture(scope="module")
def digits():
    loaded = load_model(LoadRequest("sample:digits-cnn"))
    return loaded, open_dataset("digits", loaded)


def _int8_weights(path) -> list[np.ndarray]:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    return [numpy_helper.to_array(i) for i in graph.initializer
            if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 4]


@pytest.mark.parametrize("reduce_range,limit", [(False, 127), (True, 64)])
def test_reduce_range_gives_7_bit_weights(tmp_path, reduce_range, limit):
    """With reduce_range the symmetric per-channel weights use [-64, 64] (no int16 overflow in
    u8×s8 pairs), without it the full [-127, 127]; the int8 file still matches float closely."""
    import onnxruntime as ort

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1)).eval()
    x = torch.randn(1, 3, 8, 8)
    onnx_export.export_fp32(model, InputSpec.parse("1x3x8x8 float32"), tmp_path / "f.onnx", "y")
    feed = [{"input": torch.randn(1, 3, 8, 8).numpy()} for _ in range(16)]
    onnx_export.quantize_int8(tmp_path / "f.onnx", tmp_path / "q.onnx", "static", [], feed, "minmax", reduce_range)
    weights = _int8_weights(tmp_path / "q.onnx")
    assert len(weights) == 2
    for w in weights:  # each output channel reaches the edge of its range (symmetric max-abs scaling)
        per_channel = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
        assert per_channel.max() == limit and per_channel.min() >= limit - 1
    with torch.no_grad():
        expected = model(x).numpy()
    # ORT's x64 precision mode (u8×u8 kernels) never saturates; 7-bit weights do not on the fast kernels either
    for precise in ((True, False) if reduce_range else (True,)):
        options = ort.SessionOptions()
        options.add_session_config_entry("session.x64quantprecision", "1" if precise else "0")
        session = ort.InferenceSession(str(tmp_path / "q.onnx"), options, providers=["CPUExecutionProvider"])
        y = session.run(None, {"input": x.numpy()})[0]
        assert np.abs(y - expected).max() < 0.05 * np.abs(expected).max()


def test_saturation_detection_reads_the_cpu(monkeypatch):
    import platform

    class FakePath:
        text = ""

        def __init__(self, _):
            pass

        def read_text(self):
            return FakePath.text

    monkeypatch.setattr(onnx_export, "Path", FakePath)
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    FakePath.text = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
    assert onnx_export.u8s8_saturates()
    FakePath.text = "flags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n"
    assert not onnx_export.u8s8_saturates()
    FakePath.text = "flags\t\t: avx2 avx_vnni\n"
    assert not onnx_export.u8s8_saturates()
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    FakePath.text = "flags\t\t: avx2\n"
    assert not onnx_export.u8s8_saturates()  # ARM dot products accumulate in int32


def _result(layers, inverse_drops, all_int8=0.80, baseline=0.95, single=None) -> SensitivityResult:
    setting = SweepSetting("quantize", "int8 w+a", {"quantize": {"dtype": "int8", "activations": "dynamic"}})
    cells = tuple(SensitivityCell(layer, "int8 w+a", drop, baseline - drop, 0, 0, 0)
                  for layer, drop in zip(layers, single or [0.0] * len(layers)))
    inverse = tuple(SensitivityCell(layer, "all int8 but this", drop, baseline - drop, 0, 0, 0)
                    for layer, drop in zip(layers, inverse_drops))
    return SensitivityResult("m", "accuracy", baseline, 100, (setting,), tuple(layers), cells, inverse,
                             all_int8 if inverse_drops else math.nan)


def test_sweep_layers_rank_what_float_buys_back():
    """Inverse view: gain = (baseline − all int8) − (baseline − all int8 but this layer)."""
    result = _result(["a", "b", "c", "d", "e"], [0.10, 0.15, 0.02, 0.15, 0.08])  # all-int8 drop is 0.15
    layers, rule = sweep_layers(result, "s.json")
    assert layers == ["c", "e", "a"]  # gains 0.13, 0.07, 0.05; b and d buy nothing back
    assert "s.json" in rule and "c (+13.00 pt)" in rule and "all int8 but this layer" in rule
    # without the inverse view: the layers whose own int8 copy drops the metric most
    result = _result(["a", "b", "c"], [], single=[0.01, 0.0, 0.03])
    layers, rule = sweep_layers(result, "s.json")
    assert layers == ["c", "a"] and "only this layer int8" in rule
    assert sweep_layers(_result(["a"], [0.15]), "s.json")[0] == []  # nothing helps: nothing extra float


def test_load_sweep_refuses_other_models_and_sweeps_without_quantization(digits, tmp_path):
    loaded, _ = digits
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(StudioError, match="not a sensitivity result"):
        load_sweep(tmp_path / "bad.json", loaded.module)
    (tmp_path / "other.json").write_text(json.dumps(_result(["encoder.fc"], [0.1]).to_dict()))
    with pytest.raises(StudioError, match="another model.*encoder.fc"):
        load_sweep(tmp_path / "other.json", loaded.module)
    prune_only = _result(["features.0.0"], [])
    prune_only = SensitivityResult("m", "accuracy", 0.9, 10, (SweepSetting("prune", "prune 50%", {}),),
                                   prune_only.layers, ())
    (tmp_path / "prune.json").write_text(json.dumps(prune_only.to_dict()))
    with pytest.raises(StudioError, match="no quantization sensitivity"):
        load_sweep(tmp_path / "prune.json", loaded.module)
    with pytest.raises(StudioError, match="cannot read"):
        load_sweep(tmp_path / "missing.json", loaded.module)


def _auto(loaded, data, out, sensitivity=None):
    request = ExportRequest("onnx", out, "int8", samples=120, calibration_samples=32, sensitivity=sensitivity)
    events = list(export(loaded, request, data))
    assert isinstance(events[-1], Finished)
    return events[-1].result.report.to_dict()


def test_auto_keeps_the_sweeps_most_sensitive_layers_float(digits, tmp_path):
    """A sweep ranks features.3.pointwise.0 then classifier.1 (the rest buy nothing back): the
    extra static and dynamic candidates keep exactly those float, and the report says why."""
    loaded, data = digits
    layers = [n for n, m in loaded.module.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    drops = {"features.3.pointwise.0": 0.02, "classifier.1": 0.04}
    result = _result(layers, [drops.get(layer, 0.06) for layer in layers], all_int8=0.89, baseline=0.95)
    (tmp_path / "sweep.json").write_text(json.dumps(result.to_dict()))
    report = _auto(loaded, data, tmp_path / "s.onnx", tmp_path / "sweep.json")
    assert "sensitivity sweep sweep.json" in report["float_layers_rule"]
    assert "features.3.pointwise.0 (+4.00 pt), classifier.1 (+2.00 pt)" in report["float_layers_rule"]
    floats = [r["float_layers"] for r in report["candidates"]]
    assert floats == [[], ["features.3.pointwise.0", "classifier.1"], [], ["features.3.pointwise.0", "classifier.1"]]
    assert report["verification"]["samples"] == 120


def test_auto_with_a_real_sweep_of_the_digits_sample(digits, tmp_path):
    """The sweep measured on the digits sample (int8 weights + activations, inverse view) feeds
    the export; where no layer's float copy buys accuracy back, no extra candidate is built."""
    loaded, data = digits
    spec = SweepSpec(techniques=("quantize",), settings={"quantize": ("int8 w+a",)}, samples=100)
    events = list(sweep(loaded, data, spec))
    result = events[-1].result
    assert result.inverse and len(result.inverse) == len(result.layers)
    (tmp_path / "digits.json").write_text(json.dumps(result.to_dict()))
    layers, rule = sweep_layers(result, "digits.json")
    report = _auto(loaded, data, tmp_path / "d.onnx", tmp_path / "digits.json")
    assert report["float_layers_rule"] == rule and report["float_layers_rule"] != HEURISTIC_NOTE
    expected = [[], layers, [], layers] if layers else [[], []]
    assert [r["float_layers"] for r in report["candidates"]] == expected
    assert all(r["samples"] == 120 for r in report["candidates"])


def test_cli_sensitivity_option_refuses_an_unreadable_file(tmp_path, capsys):
    from studio.cli.main import main

    code = main(["export", "sample:digits-cnn", "--format", "onnx", "--precision", "int8", "--out",
                 str(tmp_path / "m.onnx"), "--sensitivity", str(tmp_path / "none.json")])
    assert code == 2 and "cannot read the sensitivity result" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_pick_counts_speeds_within_noise_as_equal_and_the_budget_is_relative():
    from studio.core.pipelines.export.candidates import pick, within_budget

    fp32 = {"accuracy": 0.9444}
    assert within_budget({"accuracy": 0.9397}, fp32, 0.005) and not within_budget({"accuracy": 0.9396}, fp32, 0.005)
    rows = [dict(label="a", accuracy=0.940, speed_vs_fp32=1.70, file_bytes=11),
            dict(label="b", accuracy=0.942, speed_vs_fp32=1.60, file_bytes=10),  # within 10 %: as fast, more accurate
            dict(label="c", accuracy=0.950, speed_vs_fp32=0.30, file_bytes=9),
            dict(label="d", accuracy=0.900, speed_vs_fp32=3.00, file_bytes=9)]   # outside the budget
    for row in rows:
        row["within_budget"] = within_budget(row, fp32, 0.005)
    index, why = pick(rows, fp32, 0.005)
    assert index == 1 and "2 are equally fast" in why and "≥ 93.97%" in why and "1 outside it" in why
    rows[1]["speed_vs_fp32"] = 1.5  # now clearly slower than a
    assert pick(rows, fp32, 0.005)[0] == 0


def test_pick_says_plainly_when_nothing_within_the_budget_is_faster_than_fp32():
    """EfficientNet-Lite0 at 224 in LiteRT: only the dynamic file kept accuracy, at half fp32's
    speed; the choice names that and the fastest candidate the budget ruled out."""
    from studio.core.pipelines.export.candidates import NOT_FASTER, pick, within_budget

    fp32 = {"accuracy": 0.9489}
    rows = [dict(label="static", accuracy=0.9044, speed_vs_fp32=0.96, file_bytes=40),
            dict(label="static, first conv_2d + last fully_connected float", accuracy=0.9289, speed_vs_fp32=1.00,
                 file_bytes=41),
            dict(label="dynamic", accuracy=0.9111, speed_vs_fp32=0.50, file_bytes=38),
            dict(label="dynamic, first conv_2d + last fully_connected float", accuracy=0.9444, speed_vs_fp32=0.51,
                 file_bytes=38)]
    for row in rows:
        row["within_budget"] = within_budget(row, fp32, 0.005)
    index, why = pick(rows, fp32, 0.005)
    assert index == 3 and why.startswith(NOT_FASTER) and "0.51× fp32's speed" in why
    assert "the fastest candidate outside the budget is static, first conv_2d + last fully_connected float at 1.00×" \
        in why and "accuracy 92.89%" in why and "no int8 setting tried is faster" in why
    rows[0]["speed_vs_fp32"] = 1.48  # a faster one the budget ruled out: relaxing it would take that one
    why = pick(rows, fp32, 0.005)[1]
    assert "outside the budget is static at 1.48× (accuracy 90.44%)" in why and "relax the accuracy budget" in why
    rows[3]["speed_vs_fp32"] = 1.30  # within the budget and faster: the ordinary rule
    assert not pick(rows, fp32, 0.005)[1].startswith(NOT_FASTER)


def test_speed_check_calls_overlapping_repeats_the_same_speed():
    from studio.core.pipelines.export.verify import speed_check

    def latency(mine, fp32):
        return {"runtime": {"median_ms": sorted(mine)[1], "repeat_medians_ms": mine},
                "runtime_fp32": {"median_ms": sorted(fp32)[1], "repeat_medians_ms": fp32}}

    assert speed_check(latency([1.0, 1.1, 1.2], [2.0, 2.0, 2.4]))["verdict"] == "faster"
    check = speed_check(latency([2.0, 1.0, 2.0], [1.9, 1.9, 1.9]))  # one repeat faster, two slower: noise
    assert check["verdict"] == "same" and check["repeat_ratios"] == [0.95, 1.9, 0.95]
    assert speed_check(latency([2.0, 2.0, 2.2], [1.0, 1.5, 1.8]))["verdict"] == "slower"
    one_thread = latency([9.0, 9.0, 9.0], [9.0, 9.0, 9.0])  # wall times equal (waiting for a core) …
    one_thread["runtime"]["repeat_cpu_ms"], one_thread["runtime_fp32"]["repeat_cpu_ms"] = [1.0, 1.1, 1.0], [2.0] * 3
    check = speed_check(one_thread)  # … CPU time shows the work: 2× less
    assert check["verdict"] == "faster" and check["measure"] == "cpu" and check["ratio"] == 2.0
    assert check["wall_ratio"] == 1.0


def test_float_weights_keeps_the_quantized_graph_but_the_named_weights(tmp_path):
    """The named conv reads its fp32 weight (the fp32 file's own tensor); its activations and
    every other layer stay as ONNX Runtime's quantizer made them; the file still runs close to fp32."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1)).eval()
    onnx_export.export_fp32(model, InputSpec.parse("1x3x8x8 float32"), tmp_path / "f.onnx", "y")
    feed = [{"input": torch.randn(1, 3, 8, 8).numpy()} for _ in range(16)]
    onnx_export.quantize_int8(tmp_path / "f.onnx", tmp_path / "q.onnx", "static", [], feed, "minmax", False)
    first = onnx_export.weight_nodes(tmp_path / "f.onnx")[0][0]
    onnx_export.float_weights(tmp_path / "q.onnx", tmp_path / "f.onnx", tmp_path / "w.onnx", [first])
    q, w = onnx.load(str(tmp_path / "q.onnx")).graph, onnx.load(str(tmp_path / "w.onnx")).graph
    inits = {i.name: numpy_helper.to_array(i) for i in w.initializer}
    conv = next(n for n in w.node if n.name == first)
    assert np.array_equal(inits[conv.input[1]], model[0].weight.detach().numpy())
    assert len(_int8_weights(tmp_path / "w.onnx")) == 1 == len(_int8_weights(tmp_path / "q.onnx")) - 1
    ops = lambda g: sorted(n.op_type for n in g.node)  # noqa: E731
    assert ops(w) == sorted(ops(q)[:ops(q).index("DequantizeLinear")] + ops(q)[ops(q).index("DequantizeLinear") + 1:])
    produced = {o for n in w.node for o in n.output} | {i.name for i in w.input} | set(inits)
    assert all(i in produced for n in w.node for i in n.input if i)  # nothing dangling
    x = feed[0]["input"]
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    out = ort.InferenceSession(str(tmp_path / "w.onnx"), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert np.abs(out - expected).max() < 0.05 * np.abs(expected).max()


def test_auto_measures_which_weights_to_keep_fp32_without_a_sweep(digits, tmp_path):
    """No sweep: auto probes every weight layer in the runtime and adds a static candidate with
    the most fragile layers' weights in fp32; the rule says what was measured and the layers."""
    loaded, data = digits
    report = _auto(loaded, data, tmp_path / "p.onnx")
    rule = report["float_layers_rule"]
    probed = [r for r in report["candidates"] if "fp32 weights" in r["label"]]
    assert "measured in ONNX Runtime" in rule and "by rule, the first weight layer and the classifier" in rule
    assert len(probed) == 1 and probed[0]["mode"] == "static" and 1 <= len(probed[0]["float_layers"]) <= 3
    assert all(f"{layer} (−" in rule for layer in probed[0]["float_layers"])
    assert probed[0]["samples"] == 120 and probed[0]["accuracy"] >= 0.95
    from studio.cli.tables import export_summary
    from studio.core.report.export import ExportReport

    summary = export_summary(ExportReport.from_dict(report))  # the CLI prints the rule and the speed verdicts
    assert f"float layers tried: {rule}" in summary and "vs the fp32 file, over 3 repeats: 1 thread" in summary
