"""`moldau quotas`: entities and changes from its options, no broker."""

from __future__ import annotations

import pytest

from moldau.cli.common import CliError
from moldau.cli.main import parse_args
from moldau.cli.quotas import changes_of, entity_of


def test_entities() -> None:
    assert entity_of(parse_args(["quotas", "describe", "--user", "alice"])) == [("user", "alice")]
    assert entity_of(parse_args(["quotas", "describe", "--user-default", "--client-id", "app"])) == [
        ("user", None), ("client-id", "app")]
    assert entity_of(parse_args(["quotas", "describe", "--client-default"])) == [("client-id", None)]
    with pytest.raises(SystemExit):
        parse_args(["quotas", "describe", "--user", "a", "--user-default"])


def test_changes() -> None:
    args = parse_args(["quotas", "alter", "--user", "a", "--add-config",
                       "producer_byte_rate=1024, consumer_byte_rate=1.5", "--delete-config", "request_percentage"])
    assert changes_of(args) == {"producer_byte_rate": 1024.0, "consumer_byte_rate": 1.5, "request_percentage": None}
    for bad in (["--add-config", "producer_byte_rate"], ["--add-config", "producer_byte_rate=x"],
                ["--add-config", "bytes=1"], ["--add-config", "producer_byte_rate=0"], ["--delete-config", "nope"], []):
        with pytest.raises(CliError):
            changes_of(parse_args(["quotas", "alter", "--user", "a", *bad]))
