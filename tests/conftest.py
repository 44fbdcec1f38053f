from __future__ import annotations

import faulthandler
import os
import sys
import textwrap
import threading
import traceback

import pytest
import torch

HUNG_TEST_S = float(os.environ.get("STUDIO_HUNG_TEST_S", 600))  # the slowest test takes ~1 min at load 1; a test past this is stuck, not slow


def _abort_hung(config, nodeid: str) -> None:
    """Print every thread's stack and the hung test's name *last* (CI shows the tail), then end the run."""
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.suspend_global_capture(in_=False)  # the test is stuck; its captured output no longer matters
    writer = config.get_terminal_writer()
    main = threading.main_thread().ident
    frames = sys._current_frames()
    for ident, frame in [*((i, f) for i, f in frames.items() if i != main), (main, frames.get(main))]:
        if frame is not None:  # the main thread last, innermost frames at the very end
            writer.line(f"--- thread {ident}{' (main)' if ident == main else ''}")
            writer.write("".join(traceback.format_stack(frame)))
    writer.line(f"HUNG TEST: {nodeid} ran over {HUNG_TEST_S:g} s (stacks above); the run stops here.")
    writer.flush()
    os._exit(3)


def _stderr_fd(config) -> int:
    """The run's real stderr (pytest's faulthandler plugin keeps a copy; fd 2 may be captured)."""
    try:
        from _pytest.faulthandler import fault_handler_stderr_fd_key

        return config.stash[fault_handler_stderr_fd_key]
    except (ImportError, KeyError):
        return sys.__stderr__.fileno()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    timer = threading.Timer(HUNG_TEST_S, _abort_hung, args=(item.config, item.nodeid))
    timer.daemon = True
    timer.start()
    # If the stuck thread holds the GIL the timer above never runs: faulthandler's C thread then
    # dumps every thread's stack a minute later and ends the run.
    faulthandler.dump_traceback_later(HUNG_TEST_S + 60, exit=True, file=_stderr_fd(item.config))
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        timer.cancel()


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
