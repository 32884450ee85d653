"""Which ACL checks Kafka's broker (KafkaApis) makes for each API Moldau serves, on what,
and how a denial is answered: the table the server's handlers are wired by.

Each API maps to its checks in the order KafkaApis makes them. A check names the
resource type and operation, which names in the request it is asked for (`Target`), the
error a denial gets, and how it is reported (`OnDenial`). `bypass` lists permissions that
make the check unnecessary (CreateTopics: Create on the cluster lets a principal create
any topic, so Create on each topic is asked only without it). `when` says when the check
applies, if not always.

APIs absent from the table (ApiVersions, SaslHandshake, SaslAuthenticate) are never
authorized: they are how a client connects before it is anyone. DescribeCluster asks
nothing either, except to fill `cluster_authorized_operations` when that is requested.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from moldau.authorizer.acl import AclOperation, ResourceType
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode


class Target(enum.Enum):
    """Which names of the request a check is asked for."""

    CLUSTER = "the cluster resource, kafka-cluster"
    TOPICS = "each topic named in the request, once per topic"
    GROUP = "the request's group id"
    GROUPS = "each group id of the request (or, for ListGroups, each group listed)"
    TRANSACTIONAL_ID = "the request's transactional id"
    COORDINATOR_KEY = "the key of FindCoordinator: a group id (key type 0) or transactional id (1)"
    CONFIG_RESOURCES = "each config resource: TOPIC -> the topic, BROKER and BROKER_LOGGER -> the cluster"
    ANY_TOPIC = "at least one topic: AclAuthorizer.authorize_by_resource_type"
    TOPICS_TO_CREATE = "each topic named that does not exist and would be auto-created"


class OnDenial(enum.Enum):
    REQUEST = "the whole request is answered with the error (top-level error code)"
    EACH = "each denied name is answered with the error; the rest of the request proceeds"
    OMIT = "denied names are left out of the answer, without an error"


@dataclass(frozen=True)
class Permission:
    resource_type: ResourceType
    operation: AclOperation
    target: Target


@dataclass(frozen=True)
class AclCheck:
    resource_type: ResourceType
    operation: AclOperation
    target: Target
    error: ErrorCode | None  # None when denied names are only omitted
    on_denial: OnDenial
    bypass: tuple[Permission, ...] = ()
    when: str = ""


_TOPIC_DENIED = ErrorCode.topic_authorization_failed
_GROUP_DENIED = ErrorCode.group_authorization_failed
_CLUSTER_DENIED = ErrorCode.cluster_authorization_failed
_TXN_DENIED = ErrorCode.transactional_id_authorization_failed

_T, _G, _C, _X = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.CLUSTER, ResourceType.TRANSACTIONAL_ID
_Op = AclOperation


def _cluster(operation: AclOperation, on_denial: OnDenial = OnDenial.REQUEST, when: str = "") -> AclCheck:
    return AclCheck(_C, operation, Target.CLUSTER, _CLUSTER_DENIED, on_denial, when=when)


_CLUSTER_ACTION = Permission(_C, _Op.CLUSTER_ACTION, Target.CLUSTER)

API_ACL_CHECKS: dict[int, tuple[AclCheck, ...]] = {
    ApiKey.PRODUCE: (
        AclCheck(_X, _Op.WRITE, Target.TRANSACTIONAL_ID, _TXN_DENIED, OnDenial.REQUEST,
                 when="the request holds a transactional batch (a missing transactional id is denied too)"),
        AclCheck(_T, _Op.WRITE, Target.TOPICS, _TOPIC_DENIED, OnDenial.EACH),
    ),
    ApiKey.FETCH: (
        AclCheck(_C, _Op.CLUSTER_ACTION, Target.CLUSTER, _TOPIC_DENIED, OnDenial.EACH,
                 when="a follower's fetch (replica_id >= 0); denied: every partition of the "
                      "request gets TOPIC_AUTHORIZATION_FAILED"),
        AclCheck(_T, _Op.READ, Target.TOPICS, _TOPIC_DENIED, OnDenial.EACH, when="a consumer's fetch (replica_id < 0)"),
    ),
    ApiKey.LIST_OFFSETS: (AclCheck(_T, _Op.DESCRIBE, Target.TOPICS, _TOPIC_DENIED, OnDenial.EACH),),
    ApiKey.METADATA: (
        AclCheck(_T, _Op.DESCRIBE, Target.TOPICS, _TOPIC_DENIED, OnDenial.EACH,
                 when="topics named in the request; for all topics (null list, or v0 empty list) "
                      "the denied ones are omitted silently (describable_topics)"),
        AclCheck(_T, _Op.CREATE, Target.TOPICS_TO_CREATE, _TOPIC_DENIED, OnDenial.EACH,
                 bypass=(Permission(_C, _Op.CREATE, Target.CLUSTER),),
                 when="allow_auto_topic_creation and auto.create.topics.enable, for describable "
                      "topics that do not exist"),
    ),
    ApiKey.OFFSET_COMMIT: (
        AclCheck(_G, _Op.READ, Target.GROUP, _GROUP_DENIED, OnDenial.REQUEST,
                 when="denied: every partition of the request gets GROUP_AUTHORIZATION_FAILED"),
        AclCheck(_T, _Op.READ, Target.TOPICS, _TOPIC_DENIED, OnDenial.EACH),
    ),
    ApiKey.OFFSET_FETCH: (
        AclCheck(_G, _Op.DESCRIBE, Target.GROUP, _GROUP_DENIED, OnDenial.REQUEST,
                 when="v8+: per group of the request, each denied group gets the error"),
        AclCheck(_T, _Op.DESCRIBE, Target.TOPICS, _TOPIC_DENIED, OnDenial.EACH,
                 when="partitions named; for all partitions (null topics) the denied ones are omitted"),
    ),
    ApiKey.FIND_COORDINATOR: (
        AclCheck(_G, _Op.DESCRIBE, Target.COORDINATOR_KEY, _GROUP_DENIED, OnDenial.REQUEST, when="key type 0 (group)"),
        AclCheck(_X, _Op.DESCRIBE, Target.COORDINATOR_KEY, _TXN_DENIED, OnDenial.REQUEST,
                 when="key type 1 (transaction); v4+: per coordinator key"),
    ),
    ApiKey.JOIN_GROUP: (AclCheck(_G, _Op.READ, Target.GROUP, _GROUP_DENIED, OnDenial.REQUEST),),
    ApiKey.HEARTBEAT: (AclCheck(_G, _Op.READ, Target.GROUP, _GROUP_DENIED, OnDenial.REQUEST),),
    ApiKey.LEAVE_GROUP: (AclCheck(_G, _Op.READ, Target.GROUP, _GROUP_DENIED, OnDenial.REQUEST),),
    ApiKey.SYNC_GROUP: (AclCheck(_G, _Op.READ, Target.GROUP, _GROUP_DENIED, OnDenial.REQUEST),),
    ApiKey.DESCRIBE_GROUPS: (AclCheck(_G, _Op.DESCRIBE, Target.GROUPS, _GROUP_DENIED, OnDenial.EACH),),
    ApiKey.LIST_GROUPS: (
        AclCheck(_G, _Op.DESCRIBE, Target.GROUPS, None, OnDenial.OMIT,
                 bypass=(Permission(_C, _Op.DESCRIBE, Target.CLUSTER),)),
    ),
    ApiKey.DELETE_GROUPS: (AclCheck(_G, _Op.DELETE, Target.GROUPS, _GROUP_DENIED, OnDenial.EACH),),
    ApiKey.OFFSET_DELETE: (
        AclCheck(_G, _Op.DELETE, Target.GROUP, _GROUP_DENIED, OnDenial.REQUEST),
        AclCheck(_T, _Op.READ, Target.TOPICS, _TOPIC_DENIED, OnDenial.EACH),
    ),
    ApiKey.CREATE_TOPICS: (
        AclCheck(_T, _Op.CREATE, Target.TOPICS, _TOPIC_DENIED, OnDenial.EACH,
                 bypass=(Permission(_C, _Op.CREATE, Target.CLUSTER),),
                 when='error message "Authorization failed."'),
        AclCheck(_T, _Op.DESCRIBE_CONFIGS, Target.TOPICS, _TOPIC_DENIED, OnDenial.EACH,
                 when="denied: the topic is still created, its topic_config_error_code is "
                      "TOPIC_AUTHORIZATION_FAILED and its configs are not returned"),
    ),
    ApiKey.DELETE_TOPICS: (
        AclCheck(_T, _Op.DESCRIBE, Target.TOPICS, ErrorCode.unknown_topic_id, OnDenial.EACH,
                 when="topics named by topic id only: denied Describe answers UNKNOWN_TOPIC_ID"),
        AclCheck(_T, _Op.DELETE, Target.TOPICS, _TOPIC_DENIED, OnDenial.EACH),
    ),
    ApiKey.DELETE_RECORDS: (AclCheck(_T, _Op.DELETE, Target.TOPICS, _TOPIC_DENIED, OnDenial.EACH),),
    ApiKey.DESCRIBE_CONFIGS: (
        AclCheck(_T, _Op.DESCRIBE_CONFIGS, Target.CONFIG_RESOURCES, _TOPIC_DENIED, OnDenial.EACH,
                 when="a TOPIC resource"),
        _cluster(_Op.DESCRIBE_CONFIGS, OnDenial.EACH, when="a BROKER or BROKER_LOGGER resource"),
    ),
    ApiKey.ALTER_CONFIGS: (
        AclCheck(_T, _Op.ALTER_CONFIGS, Target.CONFIG_RESOURCES, _TOPIC_DENIED, OnDenial.EACH,
                 when="a TOPIC resource"),
        _cluster(_Op.ALTER_CONFIGS, OnDenial.EACH, when="a BROKER resource"),
    ),
    ApiKey.INCREMENTAL_ALTER_CONFIGS: (
        AclCheck(_T, _Op.ALTER_CONFIGS, Target.CONFIG_RESOURCES, _TOPIC_DENIED, OnDenial.EACH,
                 when="a TOPIC resource"),
        _cluster(_Op.ALTER_CONFIGS, OnDenial.EACH, when="a BROKER or BROKER_LOGGER resource"),
    ),
    ApiKey.CREATE_PARTITIONS: (
        AclCheck(_T, _Op.ALTER, Target.TOPICS, _TOPIC_DENIED, OnDenial.EACH,
                 when='error message "The topic authorization is failed."'),
    ),
    ApiKey.ELECT_LEADERS: (
        _cluster(_Op.ALTER, when="denied: top-level error and each named partition gets the error"),
    ),
    ApiKey.OFFSET_FOR_LEADER_EPOCH: (
        AclCheck(_T, _Op.DESCRIBE, Target.TOPICS, _TOPIC_DENIED, OnDenial.EACH, bypass=(_CLUSTER_ACTION,)),
    ),
    ApiKey.INIT_PRODUCER_ID: (
        AclCheck(_X, _Op.WRITE, Target.TRANSACTIONAL_ID, _TXN_DENIED, OnDenial.REQUEST,
                 when="a transactional id is given"),
        AclCheck(_T, _Op.WRITE, Target.ANY_TOPIC, _CLUSTER_DENIED, OnDenial.REQUEST,
                 bypass=(Permission(_C, _Op.IDEMPOTENT_WRITE, Target.CLUSTER),),
                 when="no transactional id (an idempotent producer)"),
    ),
    ApiKey.DESCRIBE_LOG_DIRS: (
        _cluster(_Op.DESCRIBE, when="denied: no results, and (v3+) top-level CLUSTER_AUTHORIZATION_FAILED"),
    ),
    ApiKey.DESCRIBE_PRODUCERS: (AclCheck(_T, _Op.READ, Target.TOPICS, _TOPIC_DENIED, OnDenial.EACH),),
    ApiKey.ALTER_PARTITION_REASSIGNMENTS: (_cluster(_Op.ALTER),),
    ApiKey.LIST_PARTITION_REASSIGNMENTS: (_cluster(_Op.DESCRIBE),),
    ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS: (_cluster(_Op.DESCRIBE),),
    ApiKey.ALTER_USER_SCRAM_CREDENTIALS: (_cluster(_Op.ALTER),),
    # Inter-broker requests: only brokers (and super users) may send them.
    ApiKey.LEADER_AND_ISR: (_cluster(_Op.CLUSTER_ACTION),),
    ApiKey.STOP_REPLICA: (_cluster(_Op.CLUSTER_ACTION),),
    ApiKey.UPDATE_METADATA: (_cluster(_Op.CLUSTER_ACTION),),
    ApiKey.CONTROLLED_SHUTDOWN: (_cluster(_Op.CLUSTER_ACTION),),
    ApiKey.ALTER_PARTITION: (_cluster(_Op.CLUSTER_ACTION),),
}

# The ACL APIs. Without an authorizer configured they answer SECURITY_DISABLED.
DESCRIBE_ACLS, CREATE_ACLS, DELETE_ACLS = ApiKey.DESCRIBE_ACLS, ApiKey.CREATE_ACLS, ApiKey.DELETE_ACLS
API_ACL_CHECKS[DESCRIBE_ACLS] = (_cluster(_Op.DESCRIBE),)
API_ACL_CHECKS[CREATE_ACLS] = (_cluster(_Op.ALTER),)
API_ACL_CHECKS[DELETE_ACLS] = (_cluster(_Op.ALTER),)

# Transactions (KafkaApis' checks for each).
API_ACL_CHECKS[ApiKey.ADD_PARTITIONS_TO_TXN] = (
    AclCheck(_X, _Op.WRITE, Target.TRANSACTIONAL_ID, _TXN_DENIED, OnDenial.REQUEST),
    AclCheck(_T, _Op.WRITE, Target.TOPICS, _TOPIC_DENIED, OnDenial.EACH,
             when="the other partitions get OPERATION_NOT_ATTEMPTED"),
)
API_ACL_CHECKS[ApiKey.ADD_OFFSETS_TO_TXN] = (
    AclCheck(_X, _Op.WRITE, Target.TRANSACTIONAL_ID, _TXN_DENIED, OnDenial.REQUEST),
    AclCheck(_G, _Op.READ, Target.GROUP, _GROUP_DENIED, OnDenial.REQUEST),
)
API_ACL_CHECKS[ApiKey.END_TXN] = (AclCheck(_X, _Op.WRITE, Target.TRANSACTIONAL_ID, _TXN_DENIED, OnDenial.REQUEST),)
API_ACL_CHECKS[ApiKey.WRITE_TXN_MARKERS] = (_cluster(_Op.CLUSTER_ACTION),)
API_ACL_CHECKS[ApiKey.TXN_OFFSET_COMMIT] = (
    AclCheck(_X, _Op.WRITE, Target.TRANSACTIONAL_ID, _TXN_DENIED, OnDenial.REQUEST),
    AclCheck(_G, _Op.READ, Target.GROUP, _GROUP_DENIED, OnDenial.REQUEST),
    AclCheck(_T, _Op.READ, Target.TOPICS, _TOPIC_DENIED, OnDenial.EACH),
)
API_ACL_CHECKS[ApiKey.DESCRIBE_TRANSACTIONS] = (
    AclCheck(_X, _Op.DESCRIBE, Target.TRANSACTIONAL_ID, _TXN_DENIED, OnDenial.EACH,
             when="each transactional id asked for; a denied one gets the error"),
)
API_ACL_CHECKS[ApiKey.LIST_TRANSACTIONS] = (
    AclCheck(_X, _Op.DESCRIBE, Target.TRANSACTIONAL_ID, None, OnDenial.OMIT,
             when="each transactional id listed"),
)
API_ACL_CHECKS[ApiKey.DESCRIBE_CLIENT_QUOTAS] = (_cluster(_Op.DESCRIBE_CONFIGS),)
API_ACL_CHECKS[ApiKey.ALTER_CLIENT_QUOTAS] = (
    _cluster(_Op.ALTER_CONFIGS, OnDenial.EACH, when="denied: every entry gets CLUSTER_AUTHORIZATION_FAILED"),)

# Never authorized: a client calls them before it has a principal worth checking.
UNAUTHORIZED_APIS: frozenset[int] = frozenset({
    ApiKey.API_VERSIONS, ApiKey.SASL_HANDSHAKE, ApiKey.SASL_AUTHENTICATE, ApiKey.DESCRIBE_CLUSTER,
})


def checks_for(api_key: int) -> tuple[AclCheck, ...]:
    """The checks for an API; KeyError for an API the table does not know (so that a new
    API cannot be wired without deciding its checks)."""
    if api_key in UNAUTHORIZED_APIS:
        return ()
    return API_ACL_CHECKS[api_key]
