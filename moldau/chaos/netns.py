"""Hosts on one machine: each in a network namespace of its own, with its own address.

    root namespace                    namespace mdc-<tag>-<host>
    bridge mdc<tag>br 10.201.N.1/24 ── veth mdc<tag>v<i> ══ eth0 10.201.N.<10+i>/24

The test process stays in the root namespace and reaches every host through the
bridge (its address is the bridge's, 10.201.N.1: "the clients"). Faults act on links,
not processes: iptables rules in a host's namespace, all in one chain of ours
(`MOLDAU`, jumped to from INPUT and OUTPUT), so a heal is one flush.

Everything created is named with the prefix `mdc` and a tag, the creating process's pid
in base 36, so a later run can sweep what a crashed run left behind (`sweep`: names whose
pid no longer runs). Needs root (CAP_NET_ADMIN) and `ip`/`iptables`; `check_support`
says clearly what is missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

PREFIX = "mdc"
CHAIN = "MOLDAU"
SUBNET_BASE = "10.201"
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


class NetError(RuntimeError):
    """A command that builds or changes the network failed; the message holds its stderr."""


def base36(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _DIGITS[r] + out
        if n == 0:
            return out


def tag_pid(tag: str) -> int | None:
    try:
        return int(tag, 36)
    except ValueError:
        return None


def run(args: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise NetError(f"{' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc


def check_support() -> str | None:
    """None when hosts can be built here, else why not (say it, never fake it)."""
    if os.geteuid() != 0:
        return "the chaos harness needs root (network namespaces, veth pairs, iptables); run it as root"
    for tool, package in (("ip", "iproute2"), ("iptables", "iptables")):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (apt-get install {package}, or `make chaos-deps`)"
    probe = f"{PREFIX}-probe{base36(os.getpid())}"
    proc = run(["ip", "netns", "add", probe], check=False)
    if proc.returncode != 0:
        return f"cannot create a network namespace here: {proc.stderr.strip()}"
    try:
        proc = run(["ip", "netns", "exec", probe, "iptables", "-S"], check=False)
        if proc.returncode != 0:
            return f"iptables does not work in a network namespace here: {proc.stderr.strip()}"
    finally:
        run(["ip", "netns", "del", probe], check=False)
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _leftover_tag(name: str) -> str | None:
    """The tag in one of our names, or None for a name that is not ours."""
    if not name.startswith(PREFIX):
        return None
    rest = name[len(PREFIX) :]
    if rest.startswith("-probe"):
        return rest[len("-probe") :]
    if rest.startswith("-"):  # namespace mdc-<tag>-<host>
        return rest[1:].split("-", 1)[0]
    for sep in ("br", "v"):  # links mdc<tag>br, mdc<tag>v<i>
        if sep in rest:
            return rest.split(sep, 1)[0]
    return None


def sweep(own_tag: str | None = None) -> list[str]:
    """Delete namespaces and links of ours whose creator no longer runs (and the processes
    still running in such a namespace); what was deleted."""
    removed: list[str] = []
    names = [line.split()[0] for line in run(["ip", "netns", "list"]).stdout.splitlines() if line.strip()]
    links = []
    for line in run(["ip", "-o", "link", "show"]).stdout.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            links.append(parts[1].strip().split("@", 1)[0])
    for name in names + links:
        tag = _leftover_tag(name)
        if tag is None or tag == own_tag:
            continue
        pid = tag_pid(tag)
        if pid is not None and _pid_alive(pid):
            continue
        if name in names:
            # A crashed run's servers may still run inside: they are ours, end them.
            for pid in run(["ip", "netns", "pids", name], check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            run(["ip", "netns", "del", name], check=False)
        else:
            run(["ip", "link", "del", name], check=False)
        removed.append(name)
    return removed


def _used_subnets() -> set[int]:
    used = set()
    for line in run(["ip", "-o", "-4", "addr", "show"]).stdout.splitlines():
        for word in line.split():
            if word.startswith(SUBNET_BASE + "."):
                used.add(int(word.split(".")[2]))
    return used


@dataclass
class Host:
    name: str
    index: int
    address: str
    namespace: str
    veth: str


@dataclass
class Network:
    """A bridge and hosts in namespaces. Use as a context manager: `destroy` always runs."""

    host_names: Sequence[str]
    tag: str = field(default_factory=lambda: base36(os.getpid()))
    hosts: dict[str, Host] = field(default_factory=dict)
    bridge: str = ""
    gateway: str = ""
    swept: list[str] = field(default_factory=list)

    def __enter__(self) -> Network:
        self.create()
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def create(self) -> None:
        self.swept = sweep(own_tag=self.tag)
        free = [n for n in range(1, 255) if n not in _used_subnets()]
        if not free:
            raise NetError(f"no free {SUBNET_BASE}.N.0/24 subnet")
        subnet = f"{SUBNET_BASE}.{free[0]}"
        self.bridge = f"{PREFIX}{self.tag}br"
        self.gateway = f"{subnet}.1"
        try:
            run(["ip", "link", "add", self.bridge, "type", "bridge"])
            run(["ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge])
            run(["ip", "link", "set", self.bridge, "up"])
            for i, name in enumerate(self.host_names):
                self._add_host(name, i, f"{subnet}.{10 + i}")
        except BaseException:
            self.destroy()
            raise

    def _add_host(self, name: str, index: int, address: str) -> None:
        ns = f"{PREFIX}-{self.tag}-{name}"
        veth = f"{PREFIX}{self.tag}v{index}"
        peer = f"{veth}p"
        host = Host(name, index, address, ns, veth)
        self.hosts[name] = host
        run(["ip", "netns", "add", ns])
        run(["ip", "link", "add", veth, "type", "veth", "peer", "name", peer])
        run(["ip", "link", "set", peer, "netns", ns])
        run(["ip", "link", "set", veth, "master", self.bridge])
        run(["ip", "link", "set", veth, "up"])
        in_ns = ["ip", "netns", "exec", ns]
        run([*in_ns, "ip", "link", "set", peer, "name", "eth0"])
        run([*in_ns, "ip", "addr", "add", f"{address}/24", "dev", "eth0"])
        run([*in_ns, "ip", "link", "set", "eth0", "up"])
        run([*in_ns, "ip", "link", "set", "lo", "up"])
        run([*in_ns, "iptables", "-N", CHAIN])
        run([*in_ns, "iptables", "-I", "INPUT", "-j", CHAIN])
        run([*in_ns, "iptables", "-I", "OUTPUT", "-j", CHAIN])

    def destroy(self) -> None:
        """Remove every namespace and link of this network (processes inside are the
        caller's to kill first); safe to call twice and after a partial create."""
        for host in self.hosts.values():
            run(["ip", "netns", "del", host.namespace], check=False)
            run(["ip", "link", "del", host.veth], check=False)
        if self.bridge:
            run(["ip", "link", "del", self.bridge], check=False)
        self.hosts.clear()

    # ------------------------------------------------------------------ using hosts

    def address(self, host: str) -> str:
        return self.hosts[host].address

    def exec_prefix(self, host: str) -> list[str]:
        """Prepend to a command to run it in `host`'s namespace (`ip netns exec` execs,
        so the pid of the child is the command's own)."""
        return ["ip", "netns", "exec", self.hosts[host].namespace]

    def iptables(self, host: str, *args: str) -> None:
        run([*self.exec_prefix(host), "iptables", *args])

    # ----------------------------------------------------------------------- faults

    def drop_between(self, a: str, b: str) -> None:
        """Cut the link between hosts a and b both ways (packets dropped, not refused:
        connections hang, as on a real partition). `b` may be "clients" (the root side)."""
        addr_b = self.gateway if b == "clients" else self.address(b)
        self.iptables(a, "-A", CHAIN, "-s", addr_b, "-j", "DROP")
        self.iptables(a, "-A", CHAIN, "-d", addr_b, "-j", "DROP")
        if b != "clients":
            addr_a = self.address(a)
            self.iptables(b, "-A", CHAIN, "-s", addr_a, "-j", "DROP")
            self.iptables(b, "-A", CHAIN, "-d", addr_a, "-j", "DROP")

    def partition(self, groups: Iterable[Iterable[str]]) -> None:
        """Hosts in different groups cannot talk; a host in no group is untouched
        (a bridge between them, Jepsen's `bridge`, is such a host)."""
        listed = [list(g) for g in groups]
        for i, g in enumerate(listed):
            for other in listed[i + 1 :]:
                for a in g:
                    for b in other:
                        self.drop_between(a, b)

    def loss(self, host: str, probability: float) -> None:
        """Drop this fraction of the host's incoming and outgoing packets at random."""
        for direction in ("-i", "-o"):
            self.iptables(
                host,
                "-A",
                CHAIN,
                direction,
                "eth0",
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                f"{probability:.4f}",
                "-j",
                "DROP",
            )

    def heal(self, hosts: Iterable[str] | None = None) -> None:
        for host in list(hosts) if hosts is not None else list(self.hosts):
            self.iptables(host, "-F", CHAIN)

    def rules(self, host: str) -> list[str]:
        out = run([*self.exec_prefix(host), "iptables", "-S", CHAIN]).stdout
        return [line for line in out.splitlines() if not line.startswith("-N")]
