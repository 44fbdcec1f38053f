"""Inspection and tree-view speed on a BERT-base-sized model and a 10k-module model.

Prints one JSON object (seconds, and the ratio to each target; < 1.0 means within target).
Targets: load (from a Hugging Face folder on disk) + inspect BERT-base <= 3 s, tree
population <= 0.3 s. Building the random-weight model first is reported, not counted.

    make bench            # or: python benchmarks/bench_inspect.py
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

INSPECT_TARGET_S = 3.0
POPULATE_TARGET_S = 0.3


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def bert_base():
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    return BertModel(BertConfig()).eval()


def populate_seconds(tree) -> float:
    """Model reset + view layout to depth 2, as the window does after loading."""
    from PySide6.QtWidgets import QApplication, QTreeView

    from studio.gui.qt_layer_tree_model import LayerTreeModel

    app = QApplication.instance() or QApplication([])
    model = LayerTreeModel()
    view = QTreeView()
    view.setUniformRowHeights(True)
    view.setModel(model)
    view.resize(1200, 800)
    view.show()
    app.processEvents()
    start = time.perf_counter()
    model.set_tree(tree)
    view.expandToDepth(1)
    app.processEvents()
    return time.perf_counter() - start


def main() -> None:
    from studio.core.model.input_spec import InputSpec
    from studio.core.model.inspection import inspect_model
    from tests.zoo import Wide

    import tempfile

    from studio.core.pipelines.opening import LoadRequest, load_model

    spec = InputSpec.parse("input_ids 1x128 int64 [0,30522); attention_mask 1x128 int64 [1,2)")
    model, build_s = timed(bert_base)
    folder = tempfile.mkdtemp(prefix="bench-bert-")
    model.save_pretrained(folder)  # what users open: a Hugging Face folder on disk
    loaded, load_s = timed(lambda: load_model(LoadRequest(folder)))
    tree, inspect_s = timed(lambda: inspect_model(loaded.module, spec))
    wide = Wide().eval()
    wide_tree, wide_inspect_s = timed(lambda: inspect_model(wide, InputSpec.parse("1x4 float32")))
    result = {
        "bert_base": {
            "params": tree.total_params, "modules": len(tree),
            "build_random_weights_s": round(build_s, 3), "load_folder_s": round(load_s, 3),
            "inspect_s": round(inspect_s, 3), "load_plus_inspect_s": round(load_s + inspect_s, 3),
            "load_plus_inspect_vs_target": round((load_s + inspect_s) / INSPECT_TARGET_S, 3),
        },
        "wide_10k": {"modules": len(wide_tree), "inspect_s": round(wide_inspect_s, 3)},
    }
    try:
        bert_pop = populate_seconds(tree)
        wide_pop = populate_seconds(wide_tree)
        result["bert_base"].update(populate_s=round(bert_pop, 4), populate_vs_target=round(bert_pop / POPULATE_TARGET_S, 3))
        result["wide_10k"].update(populate_s=round(wide_pop, 4), populate_vs_target=round(wide_pop / POPULATE_TARGET_S, 3))
    except ImportError as exc:  # headless machine without Qt
        result["populate_error"] = str(exc)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
