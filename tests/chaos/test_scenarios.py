"""A short chaos run in the test suite: one scenario, one seed, faults of two seconds.
Every scenario with 20 seeds is `make chaos` (docs/reliability.md)."""

from __future__ import annotations

import json

import pytest

from moldau.chaos.netns import check_support
from moldau.chaos.runner import RunOptions, run
from moldau.chaos.scenarios import SCENARIOS


@pytest.mark.timeout(240)
def test_leader_killed_loses_no_acknowledged_write() -> None:
    reason = check_support()
    if reason is not None:
        pytest.skip(reason)
    outcome = run(SCENARIOS["leader-killed"], RunOptions(seed=0, fault_s=2.0, rounds=1, recovery_s=4.0))
    summary = outcome.summary()
    assert outcome.ok, json.dumps(summary, indent=2, default=str)
    # The run did what it says: writes acknowledged and read back, a fault and its heal.
    stats = outcome.result.stats
    assert stats.get("send-ok", 0) > 100 and stats.get("final-read-ok") == 3
    assert stats.get("fault-info", 0) >= 2 and stats.get("commit-ok", 0) > 0
