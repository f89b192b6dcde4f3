"""The data-wait monitor: time between steps is the wait on data, measured on a fake clock."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from phi3v_train.training import data_wait
from phi3v_train.training.data_wait import DataWaitMonitor


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(data_wait.time, "perf_counter", fake)
    return fake


def _steps(monitor: DataWaitMonitor, clock: FakeClock, count: int, wait: float, compute: float, log: float = 0.0):
    args, state = SimpleNamespace(dataloader_num_workers=2), SimpleNamespace(global_step=0)
    for _ in range(count):
        clock.now += wait
        monitor.on_step_begin(args, state, None)
        clock.now += compute
        state.global_step += 1
        monitor.on_step_end(args, state, None)
        clock.now += log  # logging and saving after the step are not data wait
        monitor.on_log(args, state, None)


def test_waiting_more_than_a_tenth_warns_once(clock, caplog):
    monitor = DataWaitMonitor(window=4)
    with caplog.at_level(logging.WARNING, logger="phi3v_train"):
        _steps(monitor, clock, 9, wait=0.25, compute=1.0, log=5.0)
    assert monitor.steps == 8  # the first step (worker start-up) is not counted
    assert monitor.waited == pytest.approx(8 * 0.25) and monitor.computed == pytest.approx(8 * 1.0)
    assert monitor.wait_share == pytest.approx(0.2)
    warnings = [record.getMessage() for record in caplog.records]
    assert warnings == ["steps wait on data 20% of the time (up to step 5, 2 DataLoader worker(s)): raise --workers, "
                        "or convert the images once to smaller files (video: pre-extracted frames)"]  # fmt: skip


def test_waiting_under_a_tenth_is_quiet(clock, caplog):
    monitor = DataWaitMonitor(window=4)
    with caplog.at_level(logging.WARNING, logger="phi3v_train"):
        _steps(monitor, clock, 9, wait=0.1, compute=1.0, log=5.0)
    assert monitor.wait_share == pytest.approx(0.1 / 1.1)
    assert caplog.records == []
