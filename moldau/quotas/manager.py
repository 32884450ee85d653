"""Kafka's ClientQuotaManager for one kind of byte rate (produce or fetch), pure: the quotas
set (entity -> key -> value), one `Rate` per metered group of connections, and the throttle
time of each recorded request.

Connections share a rate when the same quota entity applies to them, as Kafka's sensors
are tagged: a quota on user U (or on U with the default client) meters all of U's client
ids together; a default quota meters each user (or client id) on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from moldau.quotas.client_quotas import QuotaEntity, precedence
from moldau.quotas.rate import Rate


@dataclass
class ClientQuotaManager:
    key: str  # producer_byte_rate or consumer_byte_rate
    samples: int = 11  # quota.window.num
    window_ms: int = 1000  # quota.window.size.seconds * 1000
    quotas: Mapping[QuotaEntity, Mapping[str, float]] = field(default_factory=dict)
    _rates: dict[tuple[str, str], Rate] = field(default_factory=dict)

    def set_quotas(self, quotas: Mapping[QuotaEntity, Mapping[str, float]]) -> None:
        """All quotas, as stored now; rates of connections whose quota changed start over."""
        self.quotas = quotas
        self._rates.clear()

    def quota(self, user: str, client_id: str) -> tuple[float, tuple[str, str]] | None:
        """The quota that applies and the key of the rate it meters, or None (unlimited)."""
        for entity in precedence(user, client_id):
            value = self.quotas.get(entity, {}).get(self.key)
            if value is not None:
                metered = (user if entity.user is not None else "", client_id if entity.client_id is not None else "")
                return value, metered
        return None

    def record(self, user: str, client_id: str, value: float, now_ms: int) -> int:
        """Record `value` bytes of the connection; its throttle time in ms (0: none)."""
        found = self.quota(user, client_id)
        if found is None:
            return 0
        quota, metered = found
        rate = self._rates.get(metered)
        if rate is None:
            rate = self._rates[metered] = Rate(self.samples, self.window_ms)
        return rate.record_and_throttle_ms(value, now_ms, quota)
