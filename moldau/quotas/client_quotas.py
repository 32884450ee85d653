"""Which client quota applies, by Kafka's precedence (KIP-55), and where it is stored.

A quota is set on an entity: a user, a client id, or both, each either a name or the
default (`<default>` in ZooKeeper, a null name in AlterClientQuotas). For a connection
of user U with client id C, the first entity that sets the quota key wins:

    1. user U, client C          /config/users/U/clients/C
    2. user U, default client    /config/users/U/clients/<default>
    3. user U                    /config/users/U
    4. default user, client C    /config/users/<default>/clients/C
    5. default user and client   /config/users/<default>/clients/<default>
    6. default user              /config/users/<default>
    7. client C                  /config/clients/C
    8. default client            /config/clients/<default>

The keys are Kafka's: `producer_byte_rate`, `consumer_byte_rate` (bytes per second),
`request_percentage`, `controller_mutation_rate`. A user name is URL-encoded in its znode
path (as SCRAM credentials are: they share `/config/users/<user>`); a client id is not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

PRODUCER_BYTE_RATE = "producer_byte_rate"
CONSUMER_BYTE_RATE = "consumer_byte_rate"
REQUEST_PERCENTAGE = "request_percentage"
CONTROLLER_MUTATION_RATE = "controller_mutation_rate"
QUOTA_KEYS = (PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE, REQUEST_PERCENTAGE, CONTROLLER_MUTATION_RATE)
DEFAULT = "<default>"
USER, CLIENT_ID = "user", "client-id"  # AlterClientQuotas' entity types
ENTITY_TYPES = (USER, CLIENT_ID)


class QuotaEntityError(ValueError):
    """An entity or quota AlterClientQuotas must refuse (INVALID_REQUEST)."""


@dataclass(frozen=True, order=True)
class QuotaEntity:
    """`user` / `client_id`: a name, DEFAULT, or None when the entity does not name that
    type (a client-id entity has user None)."""

    user: str | None = None
    client_id: str | None = None

    def __post_init__(self) -> None:
        if self.user is None and self.client_id is None:
            raise QuotaEntityError("Invalid empty client quota entity")

    def path(self) -> str:
        """The entity's path under /config: `users/alice`, `clients/<default>`,
        `users/alice/clients/app`."""
        parts = []
        if self.user is not None:
            parts.append(f"users/{self.user if self.user == DEFAULT else quote(self.user, safe='')}")
        if self.client_id is not None:
            parts.append(f"clients/{self.client_id}")
        return "/".join(parts)

    @classmethod
    def from_path(cls, path: str) -> QuotaEntity:
        """The inverse of `path`."""
        parts = path.split("/")
        user = client = None
        if len(parts) >= 2 and parts[0] == "users":
            user = parts[1] if parts[1] == DEFAULT else unquote(parts[1])
            parts = parts[2:]
        if len(parts) == 2 and parts[0] == "clients":
            client = parts[1]
            parts = []
        if parts:
            raise QuotaEntityError(f"not a quota entity path: {path}")
        return cls(user, client)

    @classmethod
    def from_components(cls, components: Mapping[str, str | None]) -> QuotaEntity:
        """From AlterClientQuotas' (entity type -> name, None = default) pairs."""
        unknown = set(components) - set(ENTITY_TYPES)
        if unknown:
            raise QuotaEntityError(f"Unsupported quota entity type: {sorted(unknown)[0]}")
        if not components:
            raise QuotaEntityError("Invalid empty client quota entity")
        user = components.get(USER, "") if USER in components else None
        client = components.get(CLIENT_ID, "") if CLIENT_ID in components else None
        return cls(DEFAULT if USER in components and user is None else user,
                   DEFAULT if CLIENT_ID in components and client is None else client)

    def components(self) -> dict[str, str | None]:
        """AlterClientQuotas' / DescribeClientQuotas' form: default as None."""
        out: dict[str, str | None] = {}
        if self.user is not None:
            out[USER] = None if self.user == DEFAULT else self.user
        if self.client_id is not None:
            out[CLIENT_ID] = None if self.client_id == DEFAULT else self.client_id
        return out


def precedence(user: str, client_id: str) -> tuple[QuotaEntity, ...]:
    """The entities to look at for a connection, most specific first (the table above).
    An anonymous connection's user is `ANONYMOUS`, as its principal's name."""
    return (
        QuotaEntity(user, client_id), QuotaEntity(user, DEFAULT), QuotaEntity(user, None),
        QuotaEntity(DEFAULT, client_id), QuotaEntity(DEFAULT, DEFAULT), QuotaEntity(DEFAULT, None),
        QuotaEntity(None, client_id), QuotaEntity(None, DEFAULT),
    )


def quota_for(quotas: Mapping[QuotaEntity, Mapping[str, float]], user: str, client_id: str,
              key: str) -> float | None:
    """The quota `key` that applies to the connection, or None (unlimited)."""
    for entity in precedence(user, client_id):
        value = quotas.get(entity, {}).get(key)
        if value is not None:
            return value
    return None


def validate_quota(key: str, value: float) -> None:
    if key not in QUOTA_KEYS:
        raise QuotaEntityError(f"Invalid configuration key {key}")
    if not math.isfinite(value) or value <= 0:
        raise QuotaEntityError(f"Invalid quota value {value} for {key}: must be positive")


MATCH_EXACT, MATCH_DEFAULT, MATCH_SPECIFIED = 0, 1, 2  # DescribeClientQuotas' match types


@dataclass(frozen=True)
class FilterComponent:
    """One component of a DescribeClientQuotas filter: an entity type, and a name
    (MATCH_EXACT), the default (MATCH_DEFAULT) or any name (MATCH_SPECIFIED)."""

    entity_type: str
    match_type: int
    match: str | None = None


def validate_filter(components: list[FilterComponent]) -> None:
    seen = set()
    for c in components:
        if c.entity_type not in ENTITY_TYPES:
            raise QuotaEntityError(f"Custom entity type {c.entity_type} not supported")
        if c.entity_type in seen:
            raise QuotaEntityError(f"Duplicate {c.entity_type} filter component entity type")
        if c.match_type not in (MATCH_EXACT, MATCH_DEFAULT, MATCH_SPECIFIED):
            raise QuotaEntityError(f"Unexpected match type {c.match_type}")
        if c.match_type == MATCH_EXACT and c.match is None:
            raise QuotaEntityError(f"Exact match of {c.entity_type} needs a name")
        seen.add(c.entity_type)


def filter_matches(entity: QuotaEntity, components: list[FilterComponent], strict: bool) -> bool:
    """Whether DescribeClientQuotas' filter selects the entity. `strict`: the entity may
    name no type the filter does not name."""
    names = {USER: entity.user, CLIENT_ID: entity.client_id}
    for c in components:
        name = names[c.entity_type]
        if name is None:
            return False
        if c.match_type == MATCH_DEFAULT and name != DEFAULT:
            return False
        if c.match_type == MATCH_EXACT and name != c.match:
            return False
    if strict:
        named = {c.entity_type for c in components}
        return all(names[t] is None for t in ENTITY_TYPES if t not in named)
    return True
