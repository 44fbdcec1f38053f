"""Test-only factory models for the child-process job tests (opened as `process_models.py:NAME`):
one that aborts the process when trained, one that aborts while being built, and ones that
block in a call that never checks the cancel token."""

from __future__ import annotations

import os
import resource
import tempfile
import time
from pathlib import Path

from torch import nn

INPUT_SPEC = "1x1x8x8 float32"
SLEEPING = Path(tempfile.gettempdir()) / f"studio-test-sleeping-{os.getuid()}"  # written just before blocking


class SmallNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.head = nn.Linear(8 * 64, 10)

    def forward(self, x):
        return self.head(self.conv(x).relu().flatten(1))


class AbortNet(SmallNet):
    """Kills its process (SIGABRT) on the first training step: a native crash in fine-tuning."""

    def forward(self, x):
        if self.training:
            _abort()
        return super().forward(x)


class SleepNet(SmallNet):
    """Blocks for a minute on the first training step, in a call that never looks at cancel."""

    def forward(self, x):
        if self.training:
            _block()
        return super().forward(x)


def small() -> nn.Module:
    return SmallNet()


def abort_on_load() -> nn.Module:
    _abort()


def _abort() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file left behind
    os.abort()


def sleep_on_load() -> nn.Module:
    _block()
    return SmallNet()


def _block() -> None:
    SLEEPING.write_text(str(os.getpid()))
    time.sleep(60)
