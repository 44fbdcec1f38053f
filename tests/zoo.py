"""Small real architectures the tests inspect, load and pickle (importable, so pickles resolve)."""

from __future__ import annotations

import torch
from torch import nn


class TinyMobileNet(nn.Module):
    """BatchNorm, depthwise-separable convs with stride, a residual add, global pooling."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.pw = nn.Sequential(nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8))
        self.head = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x + self.pw(self.dw(x))
        return self.head(x.mean((2, 3)))


class TiedLM(nn.Module):
    """Output projection tied to the input embedding, as in most language models."""

    def __init__(self, vocab: int = 50, dim: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.body = nn.Sequential(nn.Linear(dim, dim), nn.GELU())
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.lm_head.weight = self.embed.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.body(self.embed(ids)))


class ReusedBlock(nn.Module):
    """The same Linear module registered under two names and called twice."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(6, 6)
        self.second = self.first
        self.out = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.second(torch.relu(self.first(x))))


class Wide(nn.Module):
    """More than 10k modules, for scale tests."""

    def __init__(self, blocks: int = 2600) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Identity()) for _ in range(blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


def tiny_bert_config(**overrides):
    from transformers import BertConfig

    values = dict(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=64, max_position_embeddings=64)
    values.update(overrides)
    return BertConfig(**values)


def unique_params(module: nn.Module) -> int:
    """Independent count: parameters() already yields each tensor once."""
    return sum(p.numel() for p in module.parameters())


def unique_state_bytes(module: nn.Module) -> int:
    seen: dict[int, torch.Tensor] = {}
    for tensor in module.state_dict(keep_vars=True).values():
        seen.setdefault(id(tensor), tensor)
    return sum(t.numel() * t.element_size() for t in seen.values())


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + identity)


class ResNet18(nn.Module):
    """torchvision's ResNet-18 layout (11.7M params), written out: torchvision is not a dependency."""

    def __init__(self, classes: int = 1000, width: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        layers, cin = [], width
        for i, mult in enumerate((1, 2, 4, 8)):
            cout = width * mult
            stride = 1 if i == 0 else 2
            layers.append(nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout)))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean((2, 3)))


class SamePadConv2d(nn.Conv2d):
    """TF-"same" padding done in forward by a child pad module, as pretrained EfficientNet ports do."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = False) -> None:
        super().__init__(cin, cout, kernel, stride, padding=0, groups=groups, bias=bias)
        pad = max(kernel - stride, 0)
        self.static_padding = nn.ZeroPad2d((pad // 2, pad - pad // 2, pad // 2, pad - pad // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(self.static_padding(x), self.weight, self.bias, self.stride, self.padding,
                                          self.dilation, self.groups)


class ScaledLinear(nn.Linear):
    """A Linear subclass with a post-op in forward (a fixed output scale)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * 0.5


class SubclassedMobileNet(nn.Module):
    """EfficientNet-Lite's structure in miniature: padded Conv2d subclasses, BN, ReLU6,
    depthwise-separable blocks with a residual, a Linear-subclass head."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.stem = SamePadConv2d(3, 8, 3, 2)
        self.bn0 = nn.BatchNorm2d(8)
        self.dw = SamePadConv2d(8, 8, 3, 1, groups=8)
        self.bn1 = nn.BatchNorm2d(8)
        self.project = SamePadConv2d(8, 8, 1)
        self.bn2 = nn.BatchNorm2d(8)
        self.act = nn.ReLU6()
        self.head = ScaledLinear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn0(self.stem(x)))
        x = x + self.bn2(self.project(self.act(self.bn1(self.dw(x)))))
        return self.head(x.mean((2, 3)))
