"""Small models and data for the sensitivity tests (shared by the test modules)."""

from __future__ import annotations

import torch
from torch import nn

from studio.core.data.dataset import Dataset
from studio.core.model.input_spec import InputSpec
from studio.core.model.loaded_model import LoadedModel
from tests import zoo


class EncoderClassifier(nn.Module):
    """nn.TransformerEncoderLayer: in eval its fused fast path reads linear1/linear2 weights
    without calling them, so those layers force the full-forward fallback."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 16)
        self.encoder = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, batch_first=True, dropout=0.0)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.proj(x)).mean(1))


def _bert() -> nn.Module:
    from transformers import BertForSequenceClassification

    return BertForSequenceClassification(zoo.tiny_bert_config(num_labels=3))


ARCHITECTURES = {
    # name: (factory, input spec)
    "mobilenet": (lambda: zoo.TinyMobileNet(), "4x3x16x16 float32"),
    "resnet": (lambda: zoo.ResNet18(classes=5, width=4), "4x3x24x24 float32"),
    "reused": (lambda: zoo.ReusedBlock(), "8x6 float32"),
    "tied": (lambda: zoo.TiedLM(), "4x7 int64 [0,50)"),
    "bert": (_bert, "input_ids 4x12 int64 [0,120); attention_mask 4x12 int64 [1,2)"),
    "encoder": (lambda: EncoderClassifier(), "4x5x8 float32"),
}


def loaded_model(name: str, seed: int = 0) -> LoadedModel:
    factory, spec = ARCHITECTURES[name]
    torch.manual_seed(seed)
    module = factory().eval()
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return LoadedModel(module, name, "test", "module", InputSpec.parse(spec))


def dataset(loaded: LoadedModel, calls: int = 4, labels: int | None = None) -> Dataset:
    """`calls` batches of the input spec's shape; labelled with random classes when `labels` is given."""
    spec = loaded.input_spec
    parts = [spec.make_inputs(seed=100 + i) for i in range(calls)]
    names = [t.name for t in spec.tensors]
    inputs = {name: torch.cat([(kw[name] if spec.keyword else args[j]) for args, kw in parts])
              for j, name in enumerate(names)}
    n = len(inputs[names[0]])
    y = torch.randint(0, labels, (n,), generator=torch.Generator().manual_seed(7)) if labels else None
    return Dataset("test", inputs, y, spec.keyword, torch.arange(n), torch.arange(n))
