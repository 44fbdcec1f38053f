"""Rank-reduction speed and memory: SVD on every Linear of a BERT-base-sized model and
Tucker-2 on every 3x3 conv of a ResNet-18-sized CNN (targets: <= 15 s each).

Each case runs in its own process so its peak RSS is its own; memory is reported as
(peak RSS - RSS after building the model) / model bytes. Prints one JSON object.

    python benchmarks/bench_compress.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 15.0

CASE = r'''
import json, resource, sys, time
sys.path.insert(0, {root!r})
import torch
torch.manual_seed(0)
from studio.core.pipelines.compress import compress
from studio.core.base.events import Finished
from studio.core.model.input_spec import InputSpec
from studio.core.model.loaded_model import LoadedModel
from studio.core.plan import CompressionPlan

def rss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

case = {case!r}
if case == "bert_svd":
    from transformers import BertConfig, BertModel
    module = BertModel(BertConfig()).eval()
    spec = InputSpec.parse("input_ids 1x128 int64 [0,30522); attention_mask 1x128 int64 [1,2)")
    rules = [{{"layers": "re:.*\\.(query|key|value|dense)", "lowrank": {{"method": "svd", "rank_fraction": 0.5}}}}]
else:
    from tests.zoo import ResNet18
    module = ResNet18().eval()
    spec = InputSpec.parse("1x3x224x224 float32")
    names = [n for n, m in module.named_modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    rules = [{{"layers": n, "lowrank": {{"method": "tucker", "rank_fraction": 0.5}}}} for n in names]
model_bytes = sum(t.numel() * t.element_size() for t in module.state_dict().values())
loaded = LoadedModel(module=module, name=case, source=case, kind="benchmark", input_spec=spec)
plan = CompressionPlan.from_dict({{"rules": rules}})
base = rss_kb()
start = time.perf_counter()
result = None
for event in compress(loaded, plan, batches=[spec.make_inputs()], calibration=[]):
    if isinstance(event, Finished):
        result = event.result
total = time.perf_counter() - start
print(json.dumps({{
    "layers": len(result.changes), "apply_s": result.report.timing["apply_s"],
    "apply_plus_measure_s": round(total, 3), "apply_vs_target": round(result.report.timing["apply_s"] / {target}, 3),
    "params_before": result.report.before.params, "params_after": result.report.after.params,
    "cosine_vs_original": round(result.report.fidelity.cosine, 5),
    "model_mb": round(model_bytes / 1e6, 1),
    "peak_extra_memory_vs_model": round((rss_kb() - base) * 1024 / model_bytes, 3),
}}))
'''


def run_case(case: str) -> dict:
    code = CASE.format(root=str(ROOT), case=case, target=TARGET_S)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(json.dumps({case: run_case(case) for case in ("bert_svd", "resnet18_tucker")}, indent=1))
