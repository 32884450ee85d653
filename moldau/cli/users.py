"""`moldau users`: add, delete and list SCRAM users (Kafka's kafka-configs.sh --entity-type users).

Through a broker (AlterUserScramCredentials / DescribeUserScramCredentials, with the
usual --bootstrap-server and --command-config for a secured listener), or, to create the
users brokers need before any of them runs (an inter-broker SCRAM login), straight into
ZooKeeper with --zookeeper, as `kafka-configs.sh --zookeeper` does.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from moldau.cli.common import (
    CliError,
    client_config,
    connection_parent,
    error_text,
    fetch_metadata,
    kafka_error,
    make_client,
    wait_future,
)

MECHANISMS = {"SCRAM-SHA-256": ScramMechanism.SCRAM_SHA_256, "SCRAM-SHA-512": ScramMechanism.SCRAM_SHA_512}


def add_parsers(subparsers: Any) -> None:
    conn = connection_parent()
    conn.add_argument("--zookeeper", metavar="HOST:PORT[/CHROOT]", default=None,
                      help="write to ZooKeeper directly instead of through a broker (before brokers run)")
    users = subparsers.add_parser("users", help="add, delete and list SCRAM users",
                                  description="Manage SCRAM credentials, like kafka-configs.sh --entity-type users.")
    actions = users.add_subparsers(dest="action", required=True, metavar="ACTION")

    add = actions.add_parser("add", parents=[conn], help="add a user or change its password")
    add.add_argument("user", metavar="USER")
    add.add_argument("--password", default=None, help="(default: read one line from stdin)")
    add.add_argument("--mechanism", action="append", choices=sorted(MECHANISMS), default=None,
                     help="repeat for both (default: SCRAM-SHA-256)")
    add.add_argument("--iterations", type=int, default=4096, help="PBKDF2 iterations, 4096-16384 (default: 4096)")
    add.set_defaults(func=add_user)

    delete = actions.add_parser("delete", parents=[conn], help="delete a user's SCRAM credentials")
    delete.add_argument("user", metavar="USER")
    delete.add_argument("--mechanism", action="append", choices=sorted(MECHANISMS), default=None,
                        help="repeat for both (default: every mechanism the user has)")
    delete.set_defaults(func=delete_user)

    list_ = actions.add_parser("list", parents=[conn], help="list users and their mechanisms")
    list_.set_defaults(func=list_users)


def _password(args: argparse.Namespace) -> str:
    if args.password is not None:
        return str(args.password)
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass(f"Password for {args.user}: ")
    line = sys.stdin.readline().rstrip("\n")
    if not line:
        raise CliError("no password given (--password, or one line on stdin)")
    return line


def _check_iterations(iterations: int) -> None:
    if not 4096 <= iterations <= 16384:
        raise CliError(f"--iterations {iterations}: Kafka accepts 4096 to 16384")


def _zookeeper(args: argparse.Namespace) -> Any:
    from moldau.controller.coordination import CoordinationError
    from moldau.controller.zookeeper import ZooKeeperCoordination

    zk = ZooKeeperCoordination(args.zookeeper, session_timeout_ms=int(args.timeout * 1000))
    try:
        zk.start()
    except CoordinationError as exc:
        raise CliError(str(exc)) from None
    return zk


def _admin(args: argparse.Namespace) -> AdminClient:
    conf, watch = client_config(args)
    admin = make_client(AdminClient, conf)
    fetch_metadata(admin, args, watch)  # fails fast, naming the server, if unreachable
    return admin


def _results(futures: dict[str, Any], args: argparse.Namespace, what: str) -> None:
    for user, future in futures.items():
        try:
            wait_future(future, args, what)
        except Exception as exc:
            err = kafka_error(exc)
            raise CliError(f"cannot {what} {user}: {error_text(err) if err else exc}") from None


def add_user(args: argparse.Namespace) -> int:
    _check_iterations(args.iterations)
    mechanisms = args.mechanism or ["SCRAM-SHA-256"]
    password = _password(args)
    if args.zookeeper:
        from moldau.server.security.scram import MECHANISMS as SCRAM
        from moldau.server.security.scram import ScramCredential

        zk = _zookeeper(args)
        try:
            credentials = zk.user_scram_credentials(args.user)
            for name in mechanisms:
                credentials[name] = ScramCredential.from_password(SCRAM[name], password, args.iterations).to_kafka()
            zk.set_user_scram_credentials(args.user, credentials)
        finally:
            zk.close()
    else:
        admin = _admin(args)
        upserts = [UserScramCredentialUpsertion(args.user, ScramCredentialInfo(MECHANISMS[m], args.iterations),
                                                password.encode(), os.urandom(32)) for m in mechanisms]
        _results(admin.alter_user_scram_credentials(upserts, request_timeout=args.timeout), args, "add user")
    print(f"Added SCRAM credentials ({', '.join(mechanisms)}) for user {args.user}.")
    return 0


def delete_user(args: argparse.Namespace) -> int:
    if args.zookeeper:
        zk = _zookeeper(args)
        try:
            credentials = zk.user_scram_credentials(args.user)
            mechanisms = args.mechanism or sorted(credentials)
            if not credentials or any(m not in credentials for m in mechanisms):
                raise CliError(f"user {args.user} has no such SCRAM credential")
            zk.set_user_scram_credentials(args.user, {k: v for k, v in credentials.items() if k not in mechanisms})
        finally:
            zk.close()
    else:
        admin = _admin(args)
        mechanisms = args.mechanism or [m for m, _ in _describe(admin, args, [args.user]).get(args.user, [])]
        deletions = [UserScramCredentialDeletion(args.user, MECHANISMS[m]) for m in mechanisms]
        _results(admin.alter_user_scram_credentials(deletions, request_timeout=args.timeout), args, "delete user")
    print(f"Deleted SCRAM credentials ({', '.join(mechanisms)}) of user {args.user}.")
    return 0


def _describe(admin: AdminClient, args: argparse.Namespace,
              users: list[str] | None = None) -> dict[str, list[tuple[str, int]]]:
    """user -> [(mechanism, iterations)]."""
    names = {v: k for k, v in MECHANISMS.items()}
    try:
        if users is None:
            result = wait_future(admin.describe_user_scram_credentials(request_timeout=args.timeout), args,
                                 "list users")
        else:
            futures = admin.describe_user_scram_credentials(users, request_timeout=args.timeout)
            result = {u: wait_future(f, args, "describe user") for u, f in futures.items()}
    except Exception as exc:
        err = kafka_error(exc)
        raise CliError(f"cannot describe users: {error_text(err) if err else exc}") from None
    return {user: [(names[i.mechanism], i.iterations) for i in description.scram_credential_infos]
            for user, description in result.items()}


def list_users(args: argparse.Namespace) -> int:
    if args.zookeeper:
        from moldau.server.security.scram import ScramCredential

        zk = _zookeeper(args)
        try:
            users = {u: [(m, ScramCredential.from_kafka(t).iterations) for m, t in sorted(c.items())]
                     for u, c in zk.scram_users().items()}
        finally:
            zk.close()
    else:
        users = _describe(_admin(args), args)
    for user in sorted(users):
        print(f"{user}\t" + ", ".join(f"{m} (iterations {i})" for m, i in users[user]))
    return 0
