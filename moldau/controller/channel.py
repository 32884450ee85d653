"""How the controller reaches brokers (LeaderAndIsr, UpdateMetadata, StopReplica): a
small protocol the broker implements over its inter-broker listener (TLS and SASL
included), so nothing in `moldau/controller/` knows how the bytes travel."""

from __future__ import annotations

from typing import Any, Protocol


class BrokerChannel(Protocol):
    """One connection to one broker; requests are answered in order."""

    async def request(self, api_key: int, version: int, request: Any, timeout: float = 10.0) -> Any:
        """Send and await the answer; OSError, ConnectionError or TimeoutError on failure."""
        ...

    def close(self) -> None: ...


class BrokerChannels(Protocol):
    """Opens channels to brokers; `listener` names the endpoint of theirs to use."""

    @property
    def listener(self) -> str | None: ...

    def connect(self, host: str, port: int, client_id: str) -> BrokerChannel: ...
