"""bench.pace's arguments and its stand-in for per-call work."""

from __future__ import annotations

import time

from bench.pace import busy, load_pair


def test_a_load_is_work_before_the_send_and_after_the_answer() -> None:
    assert load_pair("40:50") == (40.0, 50.0)
    assert load_pair("20") == (20.0, 0.0)


def test_the_work_takes_at_least_the_time_asked_and_cpu_not_sleep() -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    busy(3000)
    assert time.perf_counter() - wall >= 0.003
    assert time.process_time() - cpu >= 0.002
