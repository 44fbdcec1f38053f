"""A small CNN for the 8x8 digits that exercises what compression must handle:
BatchNorm, a depthwise-separable block with a residual add, and a Linear head."""

from __future__ import annotations

import torch
from torch import nn

from studio.core.base.resources import resource

WEIGHTS = resource("samples", "digits_cnn.safetensors")
INPUT_SPEC = "input 1x1x8x8 float32"


def _conv_bn(cin: int, cout: int, kernel: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class DepthwiseResidual(nn.Module):
    """Depthwise 3x3 then pointwise 1x1, added back to the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.depthwise = _conv_bn(channels, channels, 3, groups=channels)
        self.pointwise = nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.pointwise(self.depthwise(x)))


class DigitsCNN(nn.Module):
    example_input_spec = "1x1x8x8 float32"

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn(1, 16, 3),
            _conv_bn(16, 32, 3),
            nn.MaxPool2d(2),
            DepthwiseResidual(32),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 64),
            nn.ReLU(inplace=True),
            nn.Dropout(0.2),
            nn.Linear(64, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def build_digits_cnn() -> DigitsCNN:
    from safetensors.torch import load_file

    model = DigitsCNN()
    model.load_state_dict(load_file(str(WEIGHTS)))
    return model.eval()
