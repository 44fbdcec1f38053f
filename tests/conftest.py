from __future__ import annotations

import textwrap

import pytest
import torch


FACTORY_SOURCE = textwrap.dedent('''
    import torch
    from torch import nn

    INPUT_SPEC = "2x12 float32"

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(12, 8)
            self.fc2 = nn.Linear(8, 3)

        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(x)))

    def make_net():
        return Net()

    def not_a_model():
        return 42

    def broken():
        raise RuntimeError("factory exploded")

    NUMBER = 3
''')


@pytest.fixture
def factory_file(tmp_path):
    path = tmp_path / "my_model.py"
    path.write_text(FACTORY_SOURCE)
    return path


@pytest.fixture
def net_weights(tmp_path, factory_file):
    """A state_dict for factory_file's Net, saved both as safetensors and .pt."""
    import importlib.util
    from safetensors.torch import save_file

    spec = importlib.util.spec_from_file_location("fixture_model", factory_file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.manual_seed(1)
    state = mod.Net().state_dict()
    save_file(state, str(tmp_path / "net.safetensors"))
    torch.save(state, tmp_path / "net.pt")
    return state
