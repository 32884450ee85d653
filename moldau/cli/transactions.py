"""`moldau transactions list|describe|abort`, like Kafka's kafka-transactions.sh.

confluent-kafka's AdminClient has no transaction APIs, so these speak the protocol
directly: ListTransactions to every broker, FindCoordinator + DescribeTransactions to a
transactional id's coordinator, and, for `abort` (a hanging transaction, KIP-664),
DescribeProducers to the partition's leader to find the producer whose transaction
starts at the given offset, then WriteTxnMarkers (ABORT) to that leader.
"""
from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from confluent_kafka.admin import AdminClient

from moldau.cli.common import CliError, client_config, connection_parent, fetch_metadata, make_client
from moldau.cli.groups import format_table
from moldau.protocol.apis import ApiKey
from moldau.protocol.errors import ErrorCode
from moldau.server.broker_client import BrokerConnection

TRANSACTION_KEY = 1


def add_parsers(subparsers: Any) -> None:
    conn = connection_parent()
    p = subparsers.add_parser("transactions", help="list, describe or abort transactions",
                              description="Transactions, like Kafka's kafka-transactions.sh.")
    sub = p.add_subparsers(dest="transactions_command", required=True)
    ls = sub.add_parser("list", parents=[conn], help="the transactional ids every broker coordinates")
    ls.add_argument("--state", action="append", default=[], help="only ids in this state (Ongoing, ...); repeat")
    ls.add_argument("--producer-id", action="append", type=int, default=[], help="only this producer id; repeat")
    ls.set_defaults(func=list_transactions)
    d = sub.add_parser("describe", parents=[conn], help="one transactional id's state")
    d.add_argument("--transactional-id", required=True)
    d.set_defaults(func=describe_transaction)
    a = sub.add_parser("abort", parents=[conn], help="abort a hanging transaction in one partition")
    a.add_argument("--topic", required=True)
    a.add_argument("--partition", type=int, required=True)
    a.add_argument("--start-offset", type=int, help="the first offset of the transaction to abort "
                   "(its producer is looked up with DescribeProducers)")
    a.add_argument("--producer-id", type=int)
    a.add_argument("--producer-epoch", type=int)
    a.add_argument("--coordinator-epoch", type=int)
    a.set_defaults(func=abort_transaction, _parser=a, _check=check_abort)


def check_abort(args: argparse.Namespace) -> None:
    explicit = (args.producer_id, args.producer_epoch, args.coordinator_epoch)
    if args.start_offset is None and any(v is None for v in explicit):
        args._parser.error("give --start-offset, or --producer-id, --producer-epoch and --coordinator-epoch")
    if args.partition < 0:
        args._parser.error("--partition must not be negative")


def _brokers(args: argparse.Namespace) -> tuple[dict[int, tuple[str, int]], Any]:
    conf, watch = client_config(args)
    admin = make_client(AdminClient, conf)
    metadata = fetch_metadata(admin, args, watch)
    return {b.id: (b.host, b.port) for b in metadata.brokers.values()}, metadata


def _call(args: argparse.Namespace, address: tuple[str, int], api_key: int, version: int, request: Any) -> Any:
    async def call() -> Any:
        conn = BrokerConnection(address[0], address[1], "moldau-transactions")
        try:
            return await conn.request(api_key, version, request, timeout=args.timeout)
        finally:
            conn.close()

    try:
        return asyncio.run(call())
    except (OSError, ConnectionError, TimeoutError) as exc:
        raise CliError(f"broker at {address[0]}:{address[1]}: {exc or 'no answer'}") from None


def _error(code: int) -> str:
    return ErrorCode(code).name.upper()


def list_transactions(args: argparse.Namespace) -> int:
    from kio.schema.list_transactions.v0 import request as lt

    brokers, _ = _brokers(args)
    rows = []
    failed = False
    for broker_id, address in sorted(brokers.items()):
        response = _call(args, address, ApiKey.LIST_TRANSACTIONS, 0, lt.ListTransactionsRequest(
            state_filters=tuple(args.state), producer_id_filters=tuple(args.producer_id)))
        if response.error_code != ErrorCode.none:
            print(f"moldau: error: broker {broker_id}: {_error(response.error_code)}", flush=True)
            failed = True
            continue
        if response.unknown_state_filters:
            raise CliError(f"unknown state(s): {', '.join(response.unknown_state_filters)}")
        rows += [(s.transactional_id, str(broker_id), str(s.producer_id), s.transaction_state)
                 for s in response.transaction_states]
    for line in format_table(("TransactionalId", "Coordinator", "ProducerId", "TransactionState"), sorted(rows)):
        print(line)
    return 1 if failed else 0


def describe_transaction(args: argparse.Namespace) -> int:
    from kio.schema.describe_transactions.v0 import request as dt
    from kio.schema.find_coordinator.v3 import request as fc

    brokers, _ = _brokers(args)
    found = _call(args, next(iter(brokers.values())), ApiKey.FIND_COORDINATOR, 3,
                  fc.FindCoordinatorRequest(key=args.transactional_id, key_type=TRANSACTION_KEY))
    if found.error_code != ErrorCode.none:
        raise CliError(f"no coordinator for {args.transactional_id!r}: {_error(found.error_code)}")
    try:
        response = _call(args, (found.host, found.port), ApiKey.DESCRIBE_TRANSACTIONS, 0,
                         dt.DescribeTransactionsRequest(transactional_ids=(args.transactional_id,)))
    except CliError:
        # kio cannot read the start time -1 that Kafka's answer holds for an id with no
        # transaction open (its producer was just initialised): say so rather than fail.
        raise CliError(f"{args.transactional_id!r}: no transaction open (or the coordinator is unreachable); "
                       "`moldau transactions list` shows its state") from None
    state = response.transaction_states[0]
    if state.error_code != ErrorCode.none:
        raise CliError(f"{args.transactional_id!r}: {_error(state.error_code)}")
    start_ms = int(state.transaction_start_time.timestamp() * 1000) if state.transaction_start_time else -1
    partitions = ",".join(f"{t.topic}-{p}" for t in state.topics for p in t.partitions)
    row = (str(found.node_id), state.transactional_id, str(state.producer_id), str(state.producer_epoch),
           state.transaction_state, str(int(state.transaction_timeout.total_seconds() * 1000)), str(start_ms),
           str(int(time.time() * 1000) - start_ms) if start_ms >= 0 else "None", partitions)
    for line in format_table(("CoordinatorId", "TransactionalId", "ProducerId", "ProducerEpoch", "TransactionState",
                              "TransactionTimeoutMs", "CurrentTransactionStartTimeMs", "TransactionDurationMs",
                              "TopicPartitions"), [row]):
        print(line)
    return 0


def abort_transaction(args: argparse.Namespace) -> int:
    from kio.schema.describe_producers.v0 import request as dp
    from kio.schema.write_txn_markers.v1 import request as wm

    brokers, metadata = _brokers(args)
    topic = metadata.topics.get(args.topic)
    if topic is None or args.partition not in topic.partitions:
        raise CliError(f"{args.topic}-{args.partition} does not exist")
    leader = topic.partitions[args.partition].leader
    if leader not in brokers:
        raise CliError(f"{args.topic}-{args.partition} has no leader right now; try again")
    producer = (args.producer_id, args.producer_epoch, args.coordinator_epoch)
    if args.start_offset is not None:
        response = _call(args, brokers[leader], ApiKey.DESCRIBE_PRODUCERS, 0, dp.DescribeProducersRequest(
            topics=(dp.TopicRequest(name=args.topic, partition_indexes=(args.partition,)),)))
        part = response.topics[0].partitions[0]
        if part.error_code != ErrorCode.none:
            raise CliError(f"{args.topic}-{args.partition}: {_error(part.error_code)}")
        match = [p for p in part.active_producers if p.current_txn_start_offset == args.start_offset]
        if not match:
            raise CliError(f"no open transaction starts at offset {args.start_offset} of "
                           f"{args.topic}-{args.partition}")
        producer = (match[0].producer_id, match[0].producer_epoch, match[0].coordinator_epoch)
    producer_id, producer_epoch, coordinator_epoch = producer
    response = _call(args, brokers[leader], ApiKey.WRITE_TXN_MARKERS, 1, wm.WriteTxnMarkersRequest(markers=(
        wm.WritableTxnMarker(producer_id=producer_id, producer_epoch=producer_epoch, transaction_result=False,
                             topics=(wm.WritableTxnMarkerTopic(name=args.topic, partition_indexes=(args.partition,)),),
                             coordinator_epoch=max(coordinator_epoch, 0)),)))
    code = response.markers[0].topics[0].partitions[0].error_code
    if code != ErrorCode.none:
        raise CliError(f"{args.topic}-{args.partition}: {_error(code)}")
    print(f"aborted the transaction of producer {producer_id} (epoch {producer_epoch}) in "
          f"{args.topic}-{args.partition}", flush=True)
    return 0
