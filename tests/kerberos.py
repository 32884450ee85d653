"""A real MIT Kerberos KDC for the tests: Debian's `krb5-kdc` (krb5kdc) and
`krb5-admin-server` (kdb5_util, kadmin.local), run as a child process on a free port with its
own database, kdc.conf and krb5.conf in a temporary directory.

`Kdc.env` is what a process needs to use this realm (KRB5_CONFIG, KRB5_KDC_PROFILE); brokers
and kcat run with it, and `Kdc.activate` sets it in this process (for kafka-python's
python-gssapi). Principals get keys with random passwords and are exported to keytabs.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import free_port

REALM = "MOLDAU.TEST"
KDC_BINARIES = ("krb5kdc", "kdb5_util", "kadmin.local")
INSTALL_HINT = ("MIT Kerberos KDC binaries are missing (krb5kdc, kdb5_util, kadmin.local): "
                "apt-get install krb5-kdc krb5-admin-server (make system-deps)")


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def missing_binaries() -> list[str]:
    return [name for name in KDC_BINARIES if _which(name) is None]


@dataclass
class Kdc:
    root: Path
    port: int
    realm: str = REALM
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def krb5_conf(self) -> Path:
        return self.root / "krb5.conf"

    def run(self, *args: str, input: str | None = None) -> str:
        done = subprocess.run(list(args), env={**os.environ, **self.env}, input=input, capture_output=True,
                              text=True, timeout=30, stdin=None if input is not None else subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stdout}{done.stderr}")
        return done.stdout

    def kadmin(self, query: str) -> str:
        return self.run(_which("kadmin.local") or "kadmin.local", "-r", self.realm, "-q", query)

    def add_principal(self, name: str, keytab: Path | None = None) -> Path:
        """A principal with a random key, exported to `keytab` (default: <root>/<name>.keytab)."""
        self.kadmin(f"addprinc -randkey {name}@{self.realm}")
        path = keytab or self.root / (name.replace("/", "_") + ".keytab")
        self.kadmin(f"ktadd -k {path} {name}@{self.realm}")
        return path

    def activate(self) -> dict[str, str | None]:
        """Points this process's Kerberos library at the realm; returns what to restore."""
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        return saved

    def log(self) -> str:
        try:
            return (self.root / "kdc.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


def start_kdc(root: Path, realm: str = REALM, timeout: float = 15.0) -> Kdc:
    """Creates the realm's database in `root` and starts krb5kdc on a free port (TCP and UDP)."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    kdc = Kdc(root, port, realm)
    (root / "kdc.conf").write_text(f"""[kdcdefaults]
    kdc_listen = 127.0.0.1:{port}
    kdc_tcp_listen = 127.0.0.1:{port}

[realms]
    {realm} = {{
        database_name = {root}/principal
        key_stash_file = {root}/stash
        acl_file = {root}/kadm5.acl
        max_life = 1h
        max_renewable_life = 1h
        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
    }}

[logging]
    kdc = FILE:{root}/kdc.log
    default = FILE:{root}/kdc.log
""")
    (root / "kadm5.acl").write_text("")
    # No DNS: a host name in a service principal is taken as given (kafka/localhost), and
    # TCP only, so the port needs no UDP twin.
    kdc.krb5_conf.write_text(f"""[libdefaults]
    default_realm = {realm}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    dns_canonicalize_hostname = false
    rdns = false
    udp_preference_limit = 1
    ignore_acceptor_hostname = false
    forwardable = false

[realms]
    {realm} = {{
        kdc = 127.0.0.1:{port}
    }}

[domain_realm]
    localhost = {realm}
""")
    kdc.env = {"KRB5_CONFIG": str(kdc.krb5_conf), "KRB5_KDC_PROFILE": str(root / "kdc.conf"),
               "KRB5RCACHEDIR": str(root), "KRB5CCNAME": f"FILE:{root}/ccache-default"}
    kdc.run(_which("kdb5_util") or "kdb5_util", "create", "-s", "-r", realm, "-P", "master-secret-for-tests")
    log = open(root / "krb5kdc.out", "ab")
    kdc.proc = subprocess.Popen([_which("krb5kdc") or "krb5kdc", "-n", "-r", realm, "-P", str(root / "kdc.pid")],
                                env={**os.environ, **kdc.env}, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if kdc.proc.poll() is not None:
            raise RuntimeError(f"krb5kdc exited with {kdc.proc.returncode}:\n{kdc.log()}"
                               f"{(root / 'krb5kdc.out').read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return kdc
        except OSError:
            time.sleep(0.05)
    kdc.stop()
    raise RuntimeError(f"krb5kdc did not listen on {port} within {timeout}s:\n{kdc.log()}")
