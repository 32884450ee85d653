"""`moldau quotas`: set, remove and show client quotas (kafka-configs.sh --entity-type users
/ clients), through a broker with AlterClientQuotas and DescribeClientQuotas.

    moldau quotas alter --user alice --add-config producer_byte_rate=1048576,consumer_byte_rate=2097152
    moldau quotas alter --user-default --client-id app --add-config producer_byte_rate=1024
    moldau quotas alter --user alice --delete-config producer_byte_rate
    moldau quotas describe [--user alice] [--client-id app]

librdkafka has no client-quota API, so this command speaks through kafka-python; the
--command-config file takes librdkafka's property names (security.protocol,
sasl.mechanism, sasl.username, sasl.password, ssl.ca.location, ssl.certificate.location,
ssl.key.location), as for the other commands.
"""

from __future__ import annotations

import argparse
from typing import Any

from moldau.cli.common import CliError, bootstrap_server, connection_parent, read_properties
from moldau.quotas.client_quotas import (
    CLIENT_ID,
    MATCH_DEFAULT,
    MATCH_EXACT,
    MATCH_SPECIFIED,
    QUOTA_KEYS,
    USER,
    validate_quota,
)


def add_parsers(subparsers: Any) -> None:
    conn = connection_parent()
    entity = argparse.ArgumentParser(add_help=False)
    group = entity.add_argument_group("entity")
    user = group.add_mutually_exclusive_group()
    user.add_argument("--user", metavar="NAME", help="a user (a principal's name: alice for User:alice)")
    user.add_argument("--user-default", action="store_true", help="the default user")
    client = group.add_mutually_exclusive_group()
    client.add_argument("--client-id", metavar="ID", help="a client id")
    client.add_argument("--client-default", action="store_true", help="the default client id")
    quotas = subparsers.add_parser("quotas", help="set and show client quotas",
                                   description="Client quotas, like kafka-configs.sh --entity-type users/clients.")
    actions = quotas.add_subparsers(dest="action", required=True, metavar="ACTION")
    alter = actions.add_parser("alter", parents=[conn, entity], help="set or remove quotas of one entity")
    alter.add_argument("--add-config", metavar="K=V[,K=V]", default="",
                       help=f"quotas to set: {', '.join(QUOTA_KEYS)}")
    alter.add_argument("--delete-config", metavar="K[,K]", default="", help="quotas to remove")
    alter.set_defaults(func=alter_quotas)
    describe = actions.add_parser("describe", parents=[conn, entity], help="show quotas")
    describe.set_defaults(func=describe_quotas)


def entity_of(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    """AlterClientQuotas' entity: (type, name) pairs, None naming the default."""
    out: list[tuple[str, str | None]] = []
    if args.user is not None or args.user_default:
        out.append((USER, args.user))
    if args.client_id is not None or args.client_default:
        out.append((CLIENT_ID, args.client_id))
    return out


def changes_of(args: argparse.Namespace) -> dict[str, float | None]:
    """--add-config and --delete-config as key -> value (None: remove); CliError when bad."""
    changes: dict[str, float | None] = {}
    for item in filter(None, (part.strip() for part in args.add_config.split(","))):
        key, sep, value = item.partition("=")
        try:
            number = float(value)
            validate_quota(key.strip(), number)
        except ValueError as exc:
            raise CliError(f"--add-config {item!r}: {exc if sep else 'expected key=value'}") from None
        changes[key.strip()] = number
    for key in filter(None, (part.strip() for part in args.delete_config.split(","))):
        if key not in QUOTA_KEYS:
            raise CliError(f"--delete-config {key!r}: not a quota ({', '.join(QUOTA_KEYS)})")
        changes[key] = None
    if not changes:
        raise CliError("nothing to change: give --add-config and/or --delete-config")
    return changes


def _admin(args: argparse.Namespace) -> Any:
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError as KafkaPythonError

    from moldau.console.gateway import kafka_python_config

    properties = read_properties(args.command_config) if args.command_config else {}
    conf = kafka_python_config(bootstrap_server(args), properties, args.timeout)
    conf["client_id"] = "moldau-cli"
    try:
        return KafkaAdminClient(**conf)
    except KafkaPythonError as exc:
        raise CliError(f"cannot reach {conf['bootstrap_servers']}: {exc}") from None


def _send(admin: Any, request: Any) -> Any:
    return admin._manager.run(admin._manager.send, request)


def alter_quotas(args: argparse.Namespace) -> int:
    from kafka.protocol.admin.client_quotas import AlterClientQuotasRequest as Request

    entity = entity_of(args)
    if not entity:
        raise CliError("name the entity: --user/--user-default and/or --client-id/--client-default")
    changes = changes_of(args)
    admin = _admin(args)
    try:
        response = _send(admin, Request(entries=[Request.EntryData(
            entity=[Request.EntryData.EntityData(entity_type=t, entity_name=n) for t, n in entity],
            ops=[Request.EntryData.OpData(key=k, value=v or 0.0, remove=v is None) for k, v in changes.items()])],
            validate_only=False))
    finally:
        admin.close()
    entry = response.entries[0]
    if entry.error_code:
        from kafka.errors import for_code

        raise CliError(f"cannot alter quotas: {for_code(entry.error_code).__name__}: {entry.error_message or ''}")
    print(f"Altered quotas of {_entity_text(entity)}: " + ", ".join(
        f"{k}={'(removed)' if v is None else _number(v)}" for k, v in changes.items()))
    return 0


def describe_quotas(args: argparse.Namespace) -> int:
    from kafka.protocol.admin.client_quotas import DescribeClientQuotasRequest as Request

    components = []
    for entity_type, name, default in ((USER, args.user, args.user_default),
                                       (CLIENT_ID, args.client_id, args.client_default)):
        if name is not None:
            components.append(Request.ComponentData(entity_type=entity_type, match_type=MATCH_EXACT, match=name))
        elif default:
            components.append(Request.ComponentData(entity_type=entity_type, match_type=MATCH_DEFAULT, match=None))
    if not components:  # everything: any user, and any client id without a user
        components_sets = [[Request.ComponentData(entity_type=USER, match_type=MATCH_SPECIFIED, match=None)],
                           [Request.ComponentData(entity_type=CLIENT_ID, match_type=MATCH_SPECIFIED, match=None)]]
    else:
        components_sets = [components]
    admin = _admin(args)
    found: dict[str, dict[str, float]] = {}
    try:
        for comps in components_sets:
            response = _send(admin, Request(components=comps, strict=False))
            if response.error_code:
                from kafka.errors import for_code

                raise CliError(f"cannot describe quotas: {for_code(response.error_code).__name__}: "
                               f"{response.error_message or ''}")
            for entry in response.entries or []:
                entity = [(e.entity_type, e.entity_name) for e in entry.entity]
                found[_entity_text(entity)] = {v.key: v.value for v in entry.values}
    finally:
        admin.close()
    for text in sorted(found):
        print(f"Quota configs for {text} are " + ", ".join(f"{k}={_number(v)}" for k, v in sorted(found[text].items())))
    return 0


def _entity_text(entity: list[tuple[str, str | None]]) -> str:
    names = {USER: "user", CLIENT_ID: "client-id"}
    return ", ".join(f"{names.get(t, t)}-principal '{n}'" if t == USER and n is not None
                     else f"the default {names.get(t, t)}" if n is None else f"{names.get(t, t)} '{n}'"
                     for t, n in entity)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)



