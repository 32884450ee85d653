"""The console's view data: pure functions from what the cluster says to rows on a page,
and from what a user types to checked requests. No network, no browser."""

from __future__ import annotations

import csv
import io
import json

import pytest
from confluent_kafka import KafkaError, KafkaException

from moldau.console import brokers, groups, inputs, messages, produce, replication, topics
from moldau.console.app import human_bytes, templates
from moldau.console.brokers import BrokerNode, PartitionState
from moldau.console.errors import BadInput, ClusterError, ClusterTimeout, NotFound, from_kafka
from moldau.console.live import sse_event
from moldau.console.messages import Format, Message, Position, SearchIn


def p(topic: str, partition: int, leader: int, replicas: tuple[int, ...], isr: tuple[int, ...]) -> PartitionState:
    return PartitionState(topic, partition, leader, replicas, isr)


# ------------------------------------------------------------------------ brokers


def test_broker_rows_mark_the_controller_count_leaders_and_show_dead_brokers() -> None:
    nodes = [BrokerNode(1, "h1", 9092, "rack-a"), BrokerNode(0, "h0", 9093)]
    parts = [p("t", 0, 0, (0, 1, 2), (0, 1)), p("t", 1, 1, (1, 2, 0), (1, 0)), p("u", 0, -1, (2,), ())]
    rows = brokers.broker_rows(nodes, controller_id=1, partitions=parts)
    assert [(r.id, r.live, r.controller, r.leaders, r.replicas) for r in rows] == [
        (0, True, False, 1, 2),
        (1, True, True, 1, 2),
        (2, False, False, 0, 3),  # in assignments, not live: dead
    ]
    assert rows[1].rack == "rack-a" and rows[1].address == "h1:9092"
    assert rows[2].address == "unknown"


# -------------------------------------------------------------------- replication


def test_replication_health_separates_under_replicated_and_offline() -> None:
    parts = [
        p("t", 0, 0, (0, 1), (0, 1)),
        p("t", 1, 0, (0, 1), (0,)),
        p("a", 0, -1, (1, 2), (1,)),
    ]
    health = replication.replication_health(parts, live_brokers={0})
    assert health.partitions == 3 and not health.healthy
    assert [(r.topic, r.partition, r.out_of_sync, r.dead) for r in health.under_replicated] == [
        ("a", 0, (2,), (1, 2)),
        ("t", 1, (1,), (1,)),
    ]
    assert [(r.topic, r.partition) for r in health.offline] == [("a", 0)]
    assert replication.replication_health([p("t", 0, 0, (0,), (0,))], {0}).healthy


# ------------------------------------------------------------------------- topics


def test_partition_rows_take_the_leaders_size_and_count_messages_from_the_log_start() -> None:
    states = [p("t", 1, 2, (2, 0), (2, 0)), p("t", 0, 0, (0, 1), (0,))]
    sizes = [
        topics.ReplicaSize(0, "t", 0, 100),
        topics.ReplicaSize(1, "t", 0, 40),
        topics.ReplicaSize(0, "t", 1, 70),  # leader 2's size unknown: the largest known
    ]
    rows = topics.partition_rows(states, {0: 5, 1: 0}, {0: 12, 1: 3}, sizes)
    assert [(r.partition, r.size_bytes, r.messages, r.under_replicated) for r in rows] == [
        (0, 100, 7, True),
        (1, 70, 3, False),
    ]
    unknown = topics.partition_rows([p("t", 0, 0, (0,), (0,))], {}, {}, [])[0]
    assert unknown.size_bytes is None and unknown.messages is None and unknown.high_watermark is None


def test_topic_summaries() -> None:
    summary = topics.topic_summaries(
        {"b": [p("b", 0, 0, (0, 1), (0,)), p("b", 1, -1, (1, 0), ())], "__consumer_offsets": []},
        {"gone": "Unknown topic or partition (UNKNOWN_TOPIC_OR_PART)"},
    )
    assert [
        (s.name, s.partitions, s.replication_factor, s.under_replicated, s.offline, s.internal) for s in summary
    ] == [
        ("__consumer_offsets", 0, 0, 0, 0, True),
        ("b", 2, 2, 2, 1, False),
        ("gone", 0, 0, 0, 0, False),
    ]
    assert summary[2].error is not None


def test_parse_new_topic() -> None:
    request = topics.parse_new_topic(
        {"name": " orders ", "partitions": "6", "replication_factor": "", "configs": "retention.ms=1000\n\nx=a=b"}
    )
    assert request == topics.NewTopicRequest("orders", 6, -1, {"retention.ms": "1000", "x": "a=b"})


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"name": ""}, "topic name: required"),
        ({"name": "a b"}, "may contain only"),
        ({"name": ".."}, "not allowed"),
        ({"name": "x" * 250}, "longer than 249"),
        ({"name": "t", "partitions": "0"}, "partitions: must be at least 1"),
        ({"name": "t", "partitions": "two"}, "partitions: not a whole number"),
        ({"name": "t", "replication_factor": "0"}, "replication factor: must be at least 1"),
        ({"name": "t", "configs": "retention.ms"}, "configs, line 1: expected key=value"),
    ],
)
def test_parse_new_topic_refuses_bad_input_with_a_message(form: dict[str, str], message: str) -> None:
    with pytest.raises(BadInput, match=message):
        topics.parse_new_topic(form)


def test_partition_count_only_grows() -> None:
    assert topics.parse_partition_count({"count": "4"}, current=3) == 4
    with pytest.raises(BadInput, match="can only be added"):
        topics.parse_partition_count({"count": "3"}, current=3)


def test_config_changes() -> None:
    assert topics.parse_config_change({"name": "retention.ms", "value": "5", "op": "set"}) == topics.ConfigChange(
        "retention.ms", topics.ConfigOp.SET, "5"
    )
    assert topics.parse_config_change({"name": "retention.ms", "op": "delete", "value": "ignored"}).value is None
    with pytest.raises(BadInput, match="a value is required"):
        topics.parse_config_change({"name": "retention.ms", "op": "set"})
    with pytest.raises(BadInput, match="op must be"):
        topics.parse_config_change({"name": "retention.ms", "op": "append", "value": "1"})
    with pytest.raises(BadInput, match="not a config name"):
        topics.parse_config_change({"name": "a b", "value": "1"})


def test_config_rows_put_topic_overrides_first_and_hide_sensitive_values() -> None:
    rows = topics.config_rows(
        [
            topics.ConfigRow("b", "1", "DEFAULT_CONFIG", True, False, False),
            topics.ConfigRow("z", "2", "DYNAMIC_TOPIC_CONFIG", False, False, False),
            topics.ConfigRow("a", "secret", "DEFAULT_CONFIG", True, False, True),
        ]
    )
    assert [(r.name, r.value) for r in rows] == [("z", "2"), ("a", None), ("b", "1")]


# ----------------------------------------------------------------------- messages


def query(**fields: str) -> messages.BrowseQuery:
    return messages.parse_browse_query(fields, partitions=3)


def test_browse_query_defaults_and_errors() -> None:
    q = query()
    assert (q.partition, q.position, q.limit, q.format, q.search_in) == (
        None,
        Position.END,
        messages.DEFAULT_LIMIT,
        Format.TEXT,
        SearchIn.ANY,
    )
    assert query(partition="2", position="offset", offset="7").offset == 7
    assert query(position="timestamp", timestamp="1970-01-01T00:00:01Z").timestamp_ms == 1000
    for fields, message in [
        ({"partition": "3"}, "partitions 0..2, not 3"),
        ({"position": "middle"}, "from: expected one of beginning, end, offset, timestamp"),
        ({"position": "offset", "offset": "-1"}, "offset: must be at least 0"),
        ({"position": "offset"}, "offset: not a whole number"),
        ({"position": "timestamp", "timestamp": "yesterday"}, "timestamp: expected epoch milliseconds"),
        ({"limit": "100000"}, "limit: must be at most 1000"),
        ({"format": "xml"}, "format: expected one of text, json, hex"),
    ]:
        with pytest.raises(BadInput, match=message):
            query(**fields)


def test_read_ranges_by_position() -> None:
    log_start, hw = {0: 10, 1: 0, 2: 5}, {0: 100, 1: 3, 2: 5}
    ranges = messages.read_ranges(query(position="beginning", limit="5"), [0, 1, 2], log_start, hw)
    assert [(r.partition, r.start, r.stop) for r in ranges] == [(0, 10, 15), (1, 0, 3)]  # 2 is empty
    ranges = messages.read_ranges(query(position="end", limit="5"), [0, 1, 2], log_start, hw)
    assert [(r.partition, r.start, r.stop) for r in ranges] == [(0, 95, 100), (1, 0, 3)]
    ranges = messages.read_ranges(query(position="offset", offset="2", partition="0", limit="5"), [0], log_start, hw)
    assert [(r.partition, r.start, r.stop) for r in ranges] == [(0, 10, 15)]  # before the log start: from it
    ranges = messages.read_ranges(query(position="timestamp", timestamp="5"), [0, 1], log_start, hw, {0: 42, 1: -1})
    assert [(r.partition, r.start) for r in ranges] == [(0, 42)]  # partition 1 has nothing that recent
    ranges = messages.read_ranges(query(position="end", search="x"), [0], log_start, hw)
    assert [(r.start, r.stop) for r in ranges] == [(10, 100)]  # a search scans, within MAX_SCAN


def m(
    partition: int, offset: int, ts: int, key: bytes | None = b"k", value: bytes | None = b"v", headers=()
) -> Message:
    return Message("t", partition, offset, ts, key, value, tuple(headers))


def test_render_text_json_hex() -> None:
    assert messages.render(b'{"a":[1,2]}', Format.JSON) == '{\n  "a": [\n    1,\n    2\n  ]\n}'
    assert messages.render(b"not json", Format.JSON) == "not json"
    assert messages.render(b"\x00\xffA", Format.HEX) == "00 ff 41"
    assert messages.render(b"caf\xc3\xa9 \xff", Format.TEXT) == "café \ufffd"
    assert messages.render(None, Format.TEXT) == ""


def test_search_by_key_value_or_header() -> None:
    msg = m(0, 0, 1, key=b"order-17", value=b'{"sku": "X1"}', headers=[("trace", b"abc"), ("empty", None)])
    assert messages.matches(msg, "order", SearchIn.KEY)
    assert not messages.matches(msg, "order", SearchIn.VALUE)
    assert messages.matches(msg, "X1", SearchIn.VALUE)
    assert messages.matches(msg, "abc", SearchIn.HEADER) and messages.matches(msg, "trace", SearchIn.HEADER)
    assert messages.matches(msg, "X1", SearchIn.ANY) and not messages.matches(msg, "nowhere", SearchIn.ANY)
    assert messages.matches(m(0, 0, 1, key=None, value=None), "", SearchIn.KEY)  # no search: everything
    assert not messages.matches(m(0, 0, 1, key=None, value=None), "x", SearchIn.ANY)


def test_select_keeps_the_oldest_or_newest_in_time_order() -> None:
    found = [m(1, 0, 30), m(0, 0, 10), m(0, 1, 20), m(1, 1, 40, value=b"match")]
    assert [(x.partition, x.offset) for x in messages.select(found, query(position="end", limit="2"))] == [
        (1, 0),
        (1, 1),
    ]
    assert [(x.partition, x.offset) for x in messages.select(found, query(position="beginning", limit="2"))] == [
        (0, 0),
        (0, 1),
    ]
    assert [x.offset for x in messages.select(found, query(search="match", search_in="value"))] == [1]


def test_export_json_and_csv() -> None:
    found = [m(0, 5, 1000, key=None, value=b'a,"b"\n', headers=[("h", b"1")]), m(1, 0, 2000, value=b"\x01")]
    rows = json.loads(messages.export_json(found, Format.TEXT))
    assert rows[0] == {
        "topic": "t",
        "partition": 0,
        "offset": 5,
        "timestamp": 1000,
        "key": None,
        "value": 'a,"b"\n',
        "headers": {"h": "1"},
    }
    assert json.loads(messages.export_json(found, Format.HEX))[1]["value"] == "01"
    table = list(csv.reader(io.StringIO(messages.export_csv(found, Format.TEXT))))
    assert table[0] == ["topic", "partition", "offset", "timestamp", "key", "value", "headers"]
    assert table[1] == ["t", "0", "5", "1000", "", 'a,"b"\n', '{"h": "1"}']
    assert len(table) == 3


# ------------------------------------------------------------------------ produce


def test_parse_produce() -> None:
    request = produce.parse_produce({"topic": "t", "partition": "", "key": "", "value": "v", "headers": "a=1\nb="})
    assert request == produce.ProduceRequest("t", None, None, b"v", (("a", b"1"), ("b", b"")))
    tombstone = produce.parse_produce({"topic": "t", "partition": "2", "key": "k", "value": "", "null_value": "on"})
    assert (tombstone.partition, tombstone.key, tombstone.value) == (2, b"k", None)
    with pytest.raises(BadInput, match="partition: must be at least 0"):
        produce.parse_produce({"topic": "t", "partition": "-1"})
    with pytest.raises(BadInput, match="headers, line 1"):
        produce.parse_produce({"topic": "t", "headers": "no-equals"})


# ------------------------------------------------------------------------- groups


def member(client: str, *assignment: tuple[str, int]) -> groups.Member:
    return groups.Member(f"{client}-id", client, "/127.0.0.1", None, tuple(assignment))


def test_lag_rows_cover_committed_and_assigned_partitions() -> None:
    rows = groups.lag_rows(
        committed={("t", 0): 5, ("t", 1): 9},
        log_end={("t", 0): 8, ("t", 1): 9, ("t", 2): 4},
        members=[member("c1", ("t", 0), ("t", 2))],
    )
    assert [(r.partition, r.committed, r.log_end, r.lag, r.client_id) for r in rows] == [
        (0, 5, 8, 3, "c1"),
        (1, 9, 9, 0, None),
        (2, None, 4, None, "c1"),  # assigned, nothing committed yet: lag unknown
    ]
    assert groups.total_lag(rows) == 3


def test_reset_requests() -> None:
    assert groups.parse_reset({"strategy": "earliest", "topic": ""}) == groups.ResetRequest(
        groups.ResetStrategy.EARLIEST, None
    )
    assert groups.parse_reset({"strategy": "offset", "value": "7", "topic": "t"}).offset == 7
    assert groups.parse_reset({"strategy": "timestamp", "value": "2000"}).timestamp_ms == 2000
    for form, message in [
        ({"strategy": "sideways"}, "reset to: choose"),
        ({"strategy": "offset", "value": "x"}, "offset: not a whole number"),
        ({"strategy": "timestamp", "value": ""}, "timestamp: required"),
    ]:
        with pytest.raises(BadInput, match=message):
            groups.parse_reset(form)


def test_only_a_group_without_members_is_reset() -> None:
    groups.check_resettable(groups.GroupDescription("g", "EMPTY", "", 0, ()))
    with pytest.raises(BadInput, match="stable with 1 member"):
        groups.check_resettable(groups.GroupDescription("g", "STABLE", "range", 0, (member("c1"),)))


def test_reset_targets_clamp_to_the_log() -> None:
    tps = [("t", 0), ("t", 1)]
    start, end = {("t", 0): 10, ("t", 1): 0}, {("t", 0): 20, ("t", 1): 5}

    def targets(request: groups.ResetRequest, by_time: dict[tuple[str, int], int] | None = None) -> list[int]:
        return list(groups.reset_targets(request, tps, start, end, by_time).values())

    assert targets(groups.ResetRequest(groups.ResetStrategy.EARLIEST, None)) == [10, 0]
    assert targets(groups.ResetRequest(groups.ResetStrategy.LATEST, None)) == [20, 5]
    assert targets(groups.ResetRequest(groups.ResetStrategy.OFFSET, None, offset=7)) == [10, 5]
    by_time = {("t", 0): 12, ("t", 1): -1}
    assert targets(groups.ResetRequest(groups.ResetStrategy.TIMESTAMP, None, timestamp_ms=1), by_time) == [12, 5]
    committed = {("t", 0): 1, ("u", 0): 2}
    assert groups.reset_partitions(groups.ResetRequest(groups.ResetStrategy.LATEST, "u"), committed) == [("u", 0)]
    with pytest.raises(BadInput, match="no committed offsets for topic v"):
        groups.reset_partitions(groups.ResetRequest(groups.ResetStrategy.LATEST, "v"), committed)


# ------------------------------------------------------------------ small helpers


def test_timestamps() -> None:
    assert inputs.timestamp_ms("1700000000000") == 1700000000000
    assert inputs.timestamp_ms("2024-05-01T12:00") == 1714564800000  # no zone: UTC
    assert inputs.timestamp_ms("2024-05-01T14:00:00+02:00") == 1714564800000
    assert inputs.format_timestamp(1714564800123) == "2024-05-01 12:00:00.123Z"
    assert inputs.format_timestamp(-1) == ""


def test_sse_event_sends_every_line_as_data() -> None:
    assert sse_event("<p>\n</p>") == "data: <p>\ndata: </p>\n\n"
    assert sse_event("x", "records") == "event: records\ndata: x\n\n"


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (None, 0, 1023, 1536, 5 * 1024**3)] == ["—", "0 B", "1023 B", "1.5 KiB", "5.0 GiB"]


def test_partition_fragment_highlights_unhealthy_partitions_and_escapes_names() -> None:
    view_rows = topics.partition_rows(
        [p("t", 0, 0, (0, 1), (0, 1)), p("t", 1, 0, (0, 1), (0,)), p("t", 2, -1, (1,), ())], {}, {0: 3}, []
    )

    class View:
        topic = "t"
        rows = view_rows
        size_error = "<script>"

    html = templates().get_template("_partitions.html").render(view=View())
    assert html.count('class="under-replicated"') == 1 and html.count('class="offline"') == 1
    assert '<td class="num hw">3</td>' in html
    assert "&lt;script&gt;" in html and "<script>" not in html


def test_kafka_errors_become_page_errors_by_kind() -> None:
    def error(code: int) -> KafkaException:
        return KafkaException(KafkaError(code))

    assert isinstance(from_kafka(error(KafkaError.TOPIC_ALREADY_EXISTS), "create"), BadInput)
    assert isinstance(from_kafka(error(KafkaError.UNKNOWN_TOPIC_OR_PART), "read"), NotFound)
    assert isinstance(from_kafka(error(KafkaError._TIMED_OUT), "read"), ClusterTimeout)
    other = from_kafka(error(KafkaError.NOT_CONTROLLER), "create")
    assert isinstance(other, ClusterError) and other.message.startswith("create: ")
    assert "(NOT_CONTROLLER)" in other.message
