"""Client quotas, pure: Kafka's precedence of quota entities, their znode paths, the
windowed rate and the throttle time."""

from __future__ import annotations

import pytest

from moldau.quotas.client_quotas import (
    DEFAULT,
    PRODUCER_BYTE_RATE,
    QuotaEntity,
    QuotaEntityError,
    quota_for,
    validate_quota,
)
from moldau.quotas.manager import ClientQuotaManager
from moldau.quotas.rate import Rate


def test_precedence_most_specific_first() -> None:
    quotas = {
        QuotaEntity(None, DEFAULT): {PRODUCER_BYTE_RATE: 8.0},
        QuotaEntity(None, "app"): {PRODUCER_BYTE_RATE: 7.0},
        QuotaEntity(DEFAULT, None): {PRODUCER_BYTE_RATE: 6.0},
        QuotaEntity(DEFAULT, DEFAULT): {PRODUCER_BYTE_RATE: 5.0},
        QuotaEntity(DEFAULT, "app"): {PRODUCER_BYTE_RATE: 4.0},
        QuotaEntity("alice", None): {PRODUCER_BYTE_RATE: 3.0},
        QuotaEntity("alice", DEFAULT): {PRODUCER_BYTE_RATE: 2.0},
        QuotaEntity("alice", "app"): {PRODUCER_BYTE_RATE: 1.0},
    }
    order = sorted(quotas, key=lambda e: quotas[e][PRODUCER_BYTE_RATE])
    for entity in order:  # remove the most specific each time: the next one applies
        assert quota_for(quotas, "alice", "app", PRODUCER_BYTE_RATE) == quotas[entity][PRODUCER_BYTE_RATE]
        quotas = {e: q for e, q in quotas.items() if e != entity}
    assert quota_for(quotas, "alice", "app", PRODUCER_BYTE_RATE) is None
    assert quota_for({QuotaEntity("bob", None): {PRODUCER_BYTE_RATE: 1.0}}, "alice", "x", PRODUCER_BYTE_RATE) is None


def test_entity_paths() -> None:
    cases = {
        QuotaEntity("alice", None): "users/alice",
        QuotaEntity("CN=a,O=b", "app"): "users/CN%3Da%2CO%3Db/clients/app",
        QuotaEntity(DEFAULT, DEFAULT): "users/<default>/clients/<default>",
        QuotaEntity(None, "app"): "clients/app",
    }
    for entity, path in cases.items():
        assert entity.path() == path
        assert QuotaEntity.from_path(path) == entity
    assert QuotaEntity.from_components({"user": None, "client-id": "app"}) == QuotaEntity(DEFAULT, "app")
    assert QuotaEntity("u", DEFAULT).components() == {"user": "u", "client-id": None}
    for bad in ({}, {"ip": "1.2.3.4"}):
        with pytest.raises(QuotaEntityError):
            QuotaEntity.from_components(bad)
    with pytest.raises(QuotaEntityError):
        validate_quota("producer_byte_rate", 0)
    with pytest.raises(QuotaEntityError):
        validate_quota("bytes_per_hour", 1)
    for value in (float("nan"), float("inf")):  # AlterClientQuotas carries a float64
        with pytest.raises(QuotaEntityError):
            validate_quota("producer_byte_rate", value)


def test_rate_is_averaged_over_at_least_samples_minus_one_windows() -> None:
    rate = Rate(samples=11, window_ms=1000)
    rate.record(1000, 0)
    assert rate.rate(0) == pytest.approx(100.0)  # 1000 bytes over 10 s
    for second in range(1, 20):
        rate.record(1000, second * 1000)
    assert rate.rate(19_000) == pytest.approx(11_000 / 10.0)  # 11 retained samples over 10 s


def test_throttle_time_brings_the_rate_back_to_the_quota() -> None:
    rate = Rate(samples=2, window_ms=1000)
    assert rate.record_and_throttle_ms(500, 0, quota=1000) == 0
    # 2000 bytes in a window of 1.5 s (at least one full window plus the current one):
    # 1333 B/s, a third over the quota: throttled for a third of the window.
    throttle = rate.record_and_throttle_ms(1500, 500, quota=1000)
    assert throttle == pytest.approx(500, abs=1)
    # Once those samples have left the window, the client is under its quota again.
    assert rate.record_and_throttle_ms(100, 3000, quota=1000) == 0


def test_manager_meters_per_matched_entity() -> None:
    manager = ClientQuotaManager(PRODUCER_BYTE_RATE, samples=2, window_ms=1000)
    manager.set_quotas({QuotaEntity("alice", None): {PRODUCER_BYTE_RATE: 1000.0},
                        QuotaEntity(DEFAULT, None): {PRODUCER_BYTE_RATE: 1000.0}})
    assert manager.record("alice", "a", 900, 0) == 0
    assert manager.record("alice", "b", 900, 0) > 0  # alice's client ids share her quota
    assert manager.record("bob", "a", 900, 0) == 0  # the default quota meters bob alone
    assert manager.record("carol", "a", 900, 0) == 0
    assert ClientQuotaManager(PRODUCER_BYTE_RATE).record("x", "y", 10**9, 0) == 0  # no quota: unlimited
