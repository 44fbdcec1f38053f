"""Fixtures shared by the core tests."""

from __future__ import annotations

import pytest

from studio.core.pipelines.jobs import ProcessJobRunner


@pytest.fixture(scope="module")
def runner():
    """A warm job worker process for one test module, shut down after it."""
    runner = ProcessJobRunner()
    runner.warm_up()
    yield runner
    runner.shutdown()
