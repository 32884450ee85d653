"""`moldau reassign --throttle`: the throttled-replicas lists as kafka-reassign-partitions.sh
computes them, and the flags' checks (no broker)."""
from __future__ import annotations

import pytest

from moldau.cli.main import parse_args
from moldau.cli.reassign import check, throttled_replicas


def test_leader_side_lists_current_replicas_follower_side_the_added_ones() -> None:
    current = {("t", 0): [0, 1], ("t", 1): [1, 2], ("u", 0): [2]}
    moves = [("t", 0, [1, 2]), ("t", 1, [1, 2, 0]), ("u", 0, [2])]
    assert throttled_replicas(current, moves) == {"t": ("0:0,0:1,1:1,1:2", "0:2,1:0"), "u": ("0:2", "")}


@pytest.mark.parametrize("argv", [
    ["reassign", "--throttle", "1000", "--list"],  # nothing to throttle
    ["reassign", "t:0=1", "--throttle", "0"],
    ["reassign", "t:0=1", "--throttle", "fast"],
])
def test_bad_throttle_flags_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        args = parse_args(argv)
        check(args)
    assert e.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_throttle_flags() -> None:
    args = parse_args(["reassign", "t:0=1,2", "--throttle", "5000000", "--wait"])
    check(args)
    assert args.throttle == 5_000_000
    removal = parse_args(["reassign", "--remove-throttle", "t", "--remove-throttle", "u"])
    check(removal)
    assert removal.remove_throttle == ["t", "u"]
