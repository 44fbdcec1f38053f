"""The GUI process's collection policy: full collections wait for idle and freeze their survivors."""

from __future__ import annotations

import gc
import weakref

import pytest

from studio.gui.qt_gui_priority import GuiPriority


@pytest.fixture
def priority(qtbot):
    threshold = gc.get_threshold()
    gc.unfreeze()  # the window tests before this one have frozen objects (the app-wide policy does)
    policy = GuiPriority()
    policy.timer.stop()  # driven by hand here
    policy.full_pending = False
    yield policy
    gc.unfreeze()
    gc.set_threshold(*threshold)
    gc.enable()


class _Node:
    me: object = None


def test_a_full_collection_waits_for_idle_then_freezes_the_survivors(priority, monkeypatch):
    counts = iter([(10_000, 100, 100)] * 3)
    monkeypatch.setattr(gc, "get_count", lambda: next(counts))
    done: list[int] = []
    monkeypatch.setattr(gc, "collect", lambda generation=2: done.append(generation) or 0)
    priority.job_started()
    priority.collect()
    assert done == [1] and gc.get_freeze_count() == 0  # a job runs: young generations only
    priority.job_ended()
    priority.collect()
    assert done == [1, 2] and gc.get_freeze_count() > 0  # idle: full, then the survivors frozen


def test_thaw_lets_a_frozen_cycle_be_collected(priority):
    node = _Node()
    node.me = node  # a cycle: only the cyclic collector frees it
    alive = weakref.ref(node)
    gc.freeze()
    del node
    gc.collect()
    assert alive() is not None  # frozen: a full collection does not see it
    priority.thaw()
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert alive() is None


def test_after_a_thaw_the_next_idle_tick_collects_everything_and_freezes(priority, monkeypatch):
    monkeypatch.setattr(gc, "get_count", lambda: (0, 0, 0))  # counts that would collect nothing
    done: list[int] = []
    monkeypatch.setattr(gc, "collect", lambda generation=2: done.append(generation) or 0)
    priority.thaw()
    priority.job_started()
    priority.collect()
    assert done == []  # not while a job runs
    priority.job_ended()
    priority.collect()
    assert done == [2] and gc.get_freeze_count() > 0 and not priority.full_pending
    priority.collect()
    assert done == [2]  # once
