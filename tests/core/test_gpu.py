"""The GPU path of a run (skipped without CUDA): the student fine-tunes on the device under
bf16 autocast, through simulated quantization and pruning masks, evaluates there, and comes
back to the CPU; the original never leaves the CPU and stays bit-identical."""

from __future__ import annotations

import pytest
import torch

from studio.core.data.sources import open_dataset
from studio.core.base.events import Finished, StageStarted
from studio.core.pipelines.finetune import FinetuneSettings
from studio.core.pipelines.opening import LoadRequest, load_model
from studio.core.plan import CompressionPlan

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

PLAN = CompressionPlan.from_dict({"rules": [
    {"layers": "classifier.1", "lowrank": {"method": "svd", "rank_fraction": 0.5}},
    {"layers": "re:features\\.[01]\\.0", "prune": {"mode": "unstructured", "amount": 0.7}},
    {"layers": "*", "quantize": {"dtype": "int8", "activations": "static"}},
]})


def test_finetune_on_cuda_recovers_and_leaves_the_original():
    from studio.core.pipelines.run import run

    loaded = load_model(LoadRequest("sample:digits-cnn"))
    weights = {k: v.clone() for k, v in loaded.module.state_dict().items()}
    data = open_dataset("digits", loaded)
    events = list(run(loaded, PLAN, data, FinetuneSettings(epochs=2, eval_interval=20)))
    finetune = next(e for e in events if isinstance(e, StageStarted) and e.name == "finetune")
    assert "on cuda" in finetune.detail
    result = events[-1]
    assert isinstance(result, Finished)
    report, student = result.result.report.to_dict(), result.result.model
    assert report["settings"]["device"] == "cuda"
    assert all(p.device.type == "cpu" for p in student.parameters())
    assert all(p.device.type == "cpu" for p in loaded.module.parameters())
    assert all(torch.equal(loaded.module.state_dict()[k], v) for k, v in weights.items())
    assert report["after"]["accuracy"] >= 0.9
    pruned = student.get_submodule("features.0.0").weight
    assert float((pruned == 0).float().mean()) >= 0.69  # the mask held through GPU fine-tuning
