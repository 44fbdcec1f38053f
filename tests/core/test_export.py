"""Exports run in their runtime and agree with PyTorch; bad requests get one clear error."""

from __future__ import annotations

import json

import pytest

from studio.cli.main import main
from studio.core.pipelines.compress import compress
from studio.core.data.sources import open_dataset
from studio.core.base.errors import StudioError
from studio.core.base.events import Finished, StageStarted
from studio.core.pipelines.export import ExportRequest, export
from studio.core.pipelines.export import onnx_export
from studio.core.pipelines.export.onnx_export import nodes_for_layers
from studio.core.pipelines.opening import LoadRequest, load_model
from studio.core.plan import CompressionPlan


@pytest.fixture(scope="module")
def digits():
    loaded = load_model(LoadRequest("sample:digits-cnn"))
    return loaded, open_dataset("digits", loaded)


def _run(loaded, request, data):
    events = list(export(loaded, request, data))
    assert isinstance(events[-1], Finished)
    return events, events[-1].result


@pytest.mark.parametrize("fmt,precision,min_accuracy", [
    ("onnx", "fp32", 0.98), ("onnx", "fp16", 0.98), ("onnx", "int8", 0.97), ("tflite", "fp32", 0.98),
    ("tflite", "int8", 0.97),
])
def test_export_verified_in_runtime(digits, tmp_path, fmt, precision, min_accuracy):
    loaded, data = digits
    out = tmp_path / f"m.{fmt}"
    events, result = _run(loaded, ExportRequest(fmt, out, precision), data)
    assert [e.name for e in events if isinstance(e, StageStarted)][-1] == "verify"
    report = json.loads(result.report_path.read_text())
    assert report == result.report.to_dict() and result.path == out and out.stat().st_size == report["file_bytes"]
    v = report["verification"]
    # the whole validation split (450 digits), never the training split static int8 calibrates on
    assert v["samples"] == v["labeled_samples"] == 450 and v["accuracy"] >= min_accuracy and v["top1_agreement"] >= 0.95
    assert result.report_path.name == f"m.{fmt}.report.json"
    if precision == "fp32":
        assert v["max_abs"] < 1e-3 and v["cosine"] > 0.99999
    for threads in ("1_thread", "2_thread"):
        assert report["latency"][threads]["runtime"]["median_ms"] > 0
        assert report["latency"][threads]["runtime"]["p95_ms"] >= report["latency"][threads]["runtime"]["median_ms"]
    for threads in ("1_thread", "2_thread"):
        assert report["latency"][threads]["runtime_fp32"]["median_ms"] > 0  # timed next to the same runtime's fp32
    if precision == "fp32":
        assert not report["slower_than_fp32"] and "speed_checks" not in report
    else:  # slower only when every repeat says so (by more than 5 %) at some thread count
        checks = report["speed_checks"]
        for threads, check in checks.items():
            key = "repeat_cpu_ms" if threads == "1_thread" else "repeat_medians_ms"  # 1 thread: CPU time
            mine = report["latency"][threads]["runtime"][key]
            fp32 = report["latency"][threads]["runtime_fp32"][key]
            assert len(mine) == len(fp32) == 3
            assert check["repeat_ratios"] == [round(b / a, 3) for a, b in zip(mine, fp32)]
            assert check["verdict"] == ("slower" if max(check["repeat_ratios"]) < 0.95 else
                                        "faster" if min(check["repeat_ratios"]) > 1.05 else "same")
        assert report["slower_than_fp32"] == any(c["verdict"] == "slower" for c in checks.values())
    if precision == "int8":
        _check_candidates(report, fmt)


def _check_candidates(report, fmt):
    """auto measured every candidate on the held-out split and kept, of those holding 99.5 % of
    fp32's accuracy, the most accurate of the ones within 10 % of the fastest."""
    from studio.core.report.export import ExportReport
    from studio.core.report.export_rows import candidate_rows

    rows = report["candidates"]
    assert {r["mode"] for r in rows} == {"static", "dynamic"} and len(rows) in ((4, 5) if fmt == "onnx" else (4,))
    assert any(r["float_layers"] for r in rows)  # first conv + classifier kept float in some candidates
    for row in rows:
        assert row["samples"] == 450 and row["latency_ms"] > 0 and 0 < row["size_vs_fp32"] < 0.6
        assert row["within_budget"] == (row["accuracy"] >= report["fp32"]["accuracy"] * 0.995 - 1e-12)
        ratios = [report["fp32"]["latency"][t][k] / row["latency"][t][k]
                  for t, k in (("1_thread", "cpu_ms"), ("2_thread", "median_ms"))]
        assert row["speed_vs_fp32"] == pytest.approx((ratios[0] * ratios[1]) ** 0.5, abs=1e-3)
    inside = [r for r in rows if r["within_budget"]]
    fast = [r for r in inside if r["speed_vs_fp32"] >= max(i["speed_vs_fp32"] for i in inside) / 1.1]
    chosen = [r for r in rows if r.get("chosen")]
    assert len(chosen) == 1 and chosen[0] in fast
    assert chosen[0]["accuracy"] == max(r["accuracy"] for r in fast)
    assert report["int8_mode"] == chosen[0]["mode"] and ("fastest" in report["choice"] or "equally fast" in report["choice"])
    table = candidate_rows(ExportReport.from_dict(report))
    assert len(table) == len(rows) + 1 and table[0][0] == "fp32" and sum(r[0].startswith("✔") for r in table) == 1
    assert all("(n=450)" in r[1] for r in table)


def test_int8_restricted_to_the_layers_the_plan_marked(digits, tmp_path):
    import onnx

    loaded, data = digits
    plan = CompressionPlan.from_dict({"rules": [{"layers": "classifier.1", "quantize": {"dtype": "int8"}}]})
    compressed = [e for e in compress(loaded, plan) if isinstance(e, Finished)][0].result.compressed
    small = type(loaded)(compressed, "c", "c", "compressed", loaded.input_spec, extras=dict(loaded.extras))
    _, result = _run(small, ExportRequest("onnx", tmp_path / "c.onnx", "int8", int8_mode="dynamic"), data)
    assert result.report.to_dict()["quantized_layers"] == ["classifier.1"]
    assert "classifier.4" in result.report.to_dict()["float_layers"] and "classifier.1" not in result.report.to_dict()["float_layers"]
    graph = onnx.load(str(tmp_path / "c.onnx")).graph
    integer_ops = [n for n in graph.node if n.op_type in ("MatMulInteger", "ConvInteger", "DynamicQuantizeLinear")]
    assert integer_ops and not any(n.op_type == "ConvInteger" for n in graph.node)
    assert result.report.to_dict()["verification"]["accuracy"] >= 0.97


def test_int8_onnx_has_batchnorm_folded_and_keeps_marked_layers_float(digits, tmp_path):
    """BN is folded into the convs before quantization (no BatchNormalization node), every op
    type ONNX Runtime supports is quantized, and a layer marked keep-float has no int8 weight."""
    import onnx

    loaded, data = digits
    request = ExportRequest("onnx", tmp_path / "k.onnx", "int8", int8_mode="static", keep_float=("features.0.0",),
                            calibration="percentile", calibration_samples=64)
    _, result = _run(loaded, request, data)
    graph = onnx.load(str(tmp_path / "k.onnx")).graph
    ops = [n.op_type for n in graph.node]
    assert "BatchNormalization" not in ops and "QuantizeLinear" in ops
    first = next(n for n in graph.node if n.op_type == "Conv" and "features.0.0" in n.input[1])
    assert first.input[1] == "model.features.0.0.weight"  # float weight, not a DequantizeLinear output
    assert result.report.to_dict()["float_layers"] == ["features.0.0"]
    calibration = result.report.to_dict()["calibration"]
    assert calibration == {"method": "percentile", "samples": 64, "split": "train", "runtime_method": "percentile 99.999",
                           "weights": calibration["weights"]}
    assert calibration["weights"].startswith("7-bit" if onnx_export.u8s8_saturates() else "8-bit")
    assert result.report.to_dict()["verification"]["accuracy"] >= 0.97


def test_onnx_nodes_map_to_module_names(digits, tmp_path):
    from studio.core.pipelines.export.onnx_export import export_fp32

    loaded, _ = digits
    export_fp32(loaded.module, loaded.input_spec, tmp_path / "raw.onnx", "logits")
    assert len(nodes_for_layers(tmp_path / "raw.onnx", ["features.0.0", "classifier.4"])) == 2


def test_existing_file_needs_force_and_bad_requests(digits, tmp_path):
    loaded, _ = digits
    (tmp_path / "m.onnx").write_bytes(b"keep me")
    with pytest.raises(StudioError, match="already exists"):
        list(export(loaded, ExportRequest("onnx", tmp_path / "m.onnx")))
    assert (tmp_path / "m.onnx").read_bytes() == b"keep me"
    with pytest.raises(StudioError, match="should end in .tflite"):
        list(export(loaded, ExportRequest("tflite", tmp_path / "m.onnx")))
    with pytest.raises(StudioError, match="precision 'int3'"):
        list(export(loaded, ExportRequest("onnx", tmp_path / "n.onnx", "int3")))


def test_unconvertible_model_gets_a_clear_message(tmp_path):
    from torch import nn

    from studio.core.model.input_spec import InputSpec
    from studio.core.model.loaded_model import LoadedModel

    class DataDependent(nn.Module):
        def forward(self, x):
            return x[x > 0].sum().reshape(1, 1) if float(x.sum()) > 0 else x.mean().reshape(1, 1)

    loaded = LoadedModel(DataDependent(), "dd", "dd", "factory", InputSpec.parse("1x4 float32"))
    with pytest.raises(StudioError, match="ONNX export failed: .*Try exporting the uncompressed model, or TFLite"):
        list(export(loaded, ExportRequest("onnx", tmp_path / "dd.onnx")))
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_a_model_whose_batch_axis_cannot_be_free_exports_at_batch_one(tmp_path, capfd):
    """Hugging Face's ConvNeXt fails torch.export with a free batch axis ("Invalid ranges"); the
    file is then exported at batch 1, verified in ONNX Runtime, and torch's guard tracebacks stay
    quiet."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from transformers import ConvNextConfig, ConvNextForImageClassification

    torch.manual_seed(0)
    config = ConvNextConfig(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1], image_size=32, num_labels=4)
    ConvNextForImageClassification(config).save_pretrained(tmp_path / "convnext")
    loaded = load_model(LoadRequest(str(tmp_path / "convnext")))
    events = list(export(loaded, ExportRequest("onnx", tmp_path / "cx.onnx", samples=8)))
    assert isinstance(events[-1], Finished)
    session = ort.InferenceSession(str(tmp_path / "cx.onnx"), providers=["CPUExecutionProvider"])
    args, kwargs = loaded.example_inputs()
    x = (args[0] if args else next(iter(kwargs.values())))[:1]
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        assert np.allclose(out, loaded.module(x).logits.numpy(), atol=1e-4)
    assert "Traceback" not in capfd.readouterr().err


def test_cli_export_json(tmp_path, capsys):
    out = tmp_path / "d.onnx"
    assert main(["export", "sample:digits-cnn", "--format", "onnx", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verification"]["accuracy"] >= 0.98 and out.exists()
    assert (tmp_path / "d.onnx.report.json").exists()
    assert main(["export", "sample:digits-cnn", "--format", "onnx", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    out.unlink()  # the report alone is not overwritten without --force either
    assert main(["export", "sample:digits-cnn", "--format", "onnx", "--out", str(out)]) == 2
    assert "report.json" in capsys.readouterr().err and not out.exists()


@pytest.fixture(scope="module")
def tiny_bert_classifier():
    import torch
    from transformers import BertForSequenceClassification

    from studio.core.model.input_spec import InputSpec
    from studio.core.model.loaded_model import LoadedModel
    from tests.zoo import tiny_bert_config

    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_bert_config(num_labels=3)).eval()
    spec = InputSpec.parse("input_ids 1x16 int64 [0,120); attention_mask 1x16 int64 [1,2)")
    return LoadedModel(model, "tiny-bert", "tiny-bert", "huggingface", spec)


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_bert_style_classifier_exports(tiny_bert_classifier, tmp_path, fmt):
    _, result = _run(tiny_bert_classifier, ExportRequest(fmt, tmp_path / f"b.{fmt}", "fp32", samples=8), None)
    v = result.report.to_dict()["verification"]
    assert v["max_abs"] < 1e-3 and v["top1_agreement"] == 1.0
    _, result = _run(tiny_bert_classifier, ExportRequest(fmt, tmp_path / f"b8.{fmt}", "int8", int8_mode="dynamic", samples=8),
                     None)
    assert result.report.to_dict()["int8_mode"] == "dynamic" and len(result.report.to_dict()["candidates"]) == 1
    assert result.report.to_dict()["verification"]["cosine"] > 0.98


def test_onnx_sequence_axis_is_dynamic(tiny_bert_classifier, tmp_path):
    import numpy as np
    import onnxruntime as ort

    _run(tiny_bert_classifier, ExportRequest("onnx", tmp_path / "b.onnx", samples=2), None)
    session = ort.InferenceSession(str(tmp_path / "b.onnx"), providers=["CPUExecutionProvider"])
    for batch, length in ((1, 16), (3, 40)):
        feed = {"input_ids": np.random.randint(0, 120, (batch, length)), "attention_mask": np.ones((batch, length), np.int64)}
        assert session.run(None, feed)[0].shape == (batch, 3)


def test_imagefolder_normalisation(digits, tmp_path):
    """imagefolder:PATH?mean=…&std=… normalises like the model's training did; bad options say why."""
    import numpy as np
    from PIL import Image

    loaded, _ = digits
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for i in range(2):
            Image.fromarray(np.full((8, 8), 51 * (i + 1), dtype="uint8")).save(tmp_path / label / f"{i}.png")
    plain = open_dataset(f"imagefolder:{tmp_path}", loaded).inputs["input"]
    normed = open_dataset(f"imagefolder:{tmp_path}?mean=0.5&std=0.25", loaded).inputs["input"]
    assert float(plain.max()) <= 1.0
    assert __import__("torch").allclose(normed, (plain - 0.5) / 0.25)
    with pytest.raises(StudioError, match="need both mean and std"):
        open_dataset(f"imagefolder:{tmp_path}?mean=0.5", loaded)
    with pytest.raises(StudioError, match="3 values; the model takes 1"):
        open_dataset(f"imagefolder:{tmp_path}?mean=0.4,0.4,0.4&std=0.2,0.2,0.2", loaded)
    with pytest.raises(StudioError, match="unknown size"):
        open_dataset(f"imagefolder:{tmp_path}?size=3", loaded)
