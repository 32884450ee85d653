"""The table of KafkaApis' ACL checks: every API Moldau serves is decided, and the checks
name Kafka's operations and errors."""
from __future__ import annotations

import pytest

from moldau.authorizer.acl import AclOperation, ResourceType, authorization_error
from moldau.authorizer.operations import (
    API_ACL_CHECKS,
    CREATE_ACLS,
    UNAUTHORIZED_APIS,
    OnDenial,
    Permission,
    Target,
    checks_for,
)
from moldau.protocol.apis import SUPPORTED_VERSIONS, ApiKey
from moldau.protocol.errors import ErrorCode

Op = AclOperation


def test_every_supported_api_is_decided() -> None:
    for api_key in SUPPORTED_VERSIONS:
        assert api_key in API_ACL_CHECKS or api_key in UNAUTHORIZED_APIS, ApiKey(api_key).name
    assert not (set(API_ACL_CHECKS) & UNAUTHORIZED_APIS)


def test_an_unknown_api_is_not_silently_allowed() -> None:
    with pytest.raises(KeyError):
        checks_for(9999)
    assert checks_for(ApiKey.API_VERSIONS) == ()


# Where Kafka's denial error is not the one of the checked resource type.
KAFKA_EXCEPTIONS = {
    (ApiKey.FETCH, Target.CLUSTER),  # a follower denied: TOPIC_AUTHORIZATION_FAILED per partition
    (ApiKey.DELETE_TOPICS, Target.TOPICS, Op.DESCRIBE),  # by topic id: UNKNOWN_TOPIC_ID
    (ApiKey.INIT_PRODUCER_ID, Target.ANY_TOPIC),  # an idempotent producer: CLUSTER_AUTHORIZATION_FAILED
}


def test_errors_follow_the_resource_type_except_where_kafka_differs() -> None:
    for api_key, checks in API_ACL_CHECKS.items():
        for check in checks:
            if check.on_denial is OnDenial.OMIT:
                assert check.error is None
            elif {(api_key, check.target), (api_key, check.target, check.operation)} & KAFKA_EXCEPTIONS:
                assert check.error != authorization_error(check.resource_type)
            else:
                assert check.error == authorization_error(check.resource_type), (ApiKey(api_key).name, check)


def only(api_key: int) -> tuple[ResourceType, AclOperation, ErrorCode | None, OnDenial]:
    (check,) = checks_for(api_key)
    return check.resource_type, check.operation, check.error, check.on_denial


def test_kafka_apis_checks() -> None:
    topic_failed, group_failed = ErrorCode.topic_authorization_failed, ErrorCode.group_authorization_failed
    cluster_failed = ErrorCode.cluster_authorization_failed
    assert only(ApiKey.LIST_OFFSETS) == (ResourceType.TOPIC, Op.DESCRIBE, topic_failed, OnDenial.EACH)
    assert only(ApiKey.JOIN_GROUP) == (ResourceType.GROUP, Op.READ, group_failed, OnDenial.REQUEST)
    assert only(ApiKey.DESCRIBE_GROUPS) == (ResourceType.GROUP, Op.DESCRIBE, group_failed, OnDenial.EACH)
    assert only(ApiKey.DELETE_GROUPS) == (ResourceType.GROUP, Op.DELETE, group_failed, OnDenial.EACH)
    assert only(ApiKey.CREATE_PARTITIONS) == (ResourceType.TOPIC, Op.ALTER, topic_failed, OnDenial.EACH)
    assert only(ApiKey.DELETE_RECORDS) == (ResourceType.TOPIC, Op.DELETE, topic_failed, OnDenial.EACH)
    assert only(ApiKey.LEADER_AND_ISR) == (ResourceType.CLUSTER, Op.CLUSTER_ACTION, cluster_failed, OnDenial.REQUEST)
    assert only(ApiKey.ELECT_LEADERS) == (ResourceType.CLUSTER, Op.ALTER, cluster_failed, OnDenial.REQUEST)
    assert only(CREATE_ACLS) == (ResourceType.CLUSTER, Op.ALTER, cluster_failed, OnDenial.REQUEST)
    produce = checks_for(ApiKey.PRODUCE)
    assert [(c.resource_type, c.operation) for c in produce] == [
        (ResourceType.TRANSACTIONAL_ID, Op.WRITE), (ResourceType.TOPIC, Op.WRITE)]
    create_topics = checks_for(ApiKey.CREATE_TOPICS)[0]
    assert create_topics.bypass == (Permission(ResourceType.CLUSTER, Op.CREATE, Target.CLUSTER),)
    list_groups = only(ApiKey.LIST_GROUPS)
    assert list_groups == (ResourceType.GROUP, Op.DESCRIBE, None, OnDenial.OMIT)
