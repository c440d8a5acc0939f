"""Machines of their own on one host: Linux network namespaces joined by veth links (iproute2, as root).

A hub namespace holds the services (Redis, the API, the sshd targets) on addresses of its loopback; each machine is
another namespace with one veth link to the hub and a route to those addresses through it, and nothing else: no
loopback service of the hub's, no other machine, no way out of the host. Every namespace of a run is named
`wsx-<pid>-<n>-<name>`, so parallel runs never meet, and a run that died without cleaning up is swept by the next.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Self

PREFIX = "wsx-"
SERVICES = "10.199.0"  # the hub's service addresses: SERVICES.N/32 on its loopback
CLONE_NEWNET = 0x40000000  # linux/sched.h
_libc = ctypes.CDLL(None, use_errno=True)
_runs = itertools.count(1)  # several networks in one process get names of their own


def ip(*args: str) -> str:
    """Run `ip ARGS`; its output, or a RuntimeError with what it said."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns {path}: {os.strerror(errno)}")
    finally:
        os.close(fd)


class Namespace:
    """One network namespace we made: run commands in it, enter it from this thread, kill everything in it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def command(self, *argv: str) -> list[str]:
        """argv run inside the namespace (`ip netns exec` execs it: the process we start is the command itself)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def pids(self) -> list[int]:
        return [int(pid) for pid in ip("netns", "pids", self.name).split()]

    def signal_all(self, signum: int) -> list[int]:
        """Send signum to every process in the namespace; their PIDs."""
        pids = self.pids()
        for pid in pids:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        return pids

    def kill_all(self) -> list[int]:
        return self.signal_all(signal.SIGKILL)

    def power_off(self) -> list[int]:
        """The machine loses power: every process frozen at once, its links cut (nothing it sends gets out: no FIN
        for its peers, no last write), then all of them killed. The PIDs it ran."""
        pids = self.signal_all(signal.SIGSTOP)
        for line in ip("-o", "-n", self.name, "link", "show").splitlines():
            name = line.split(":")[1].strip().split("@")[0]
            if name != "lo":
                ip("-n", self.name, "link", "set", "dev", name, "down")
        self.kill_all()
        return pids

    @contextmanager
    def inside(self) -> Iterator[None]:
        """Put this thread in the namespace (sockets it opens, processes it starts are there), and back after."""
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            _setns(f"/run/netns/{self.name}")
            try:
                yield
            finally:
                if _libc.setns(home, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back to the original namespace failed")
        finally:
            os.close(home)

    def delete(self) -> None:
        """Kill what still runs in it, then remove it (its veth links go with it)."""
        try:
            self.kill_all()
        except RuntimeError:  # already gone
            return
        ip("netns", "delete", self.name)


def remove_stale(prefix: str = PREFIX) -> list[str]:
    """Delete the namespaces of runs whose process is gone (killed before their teardown): no leftovers pile up."""
    removed = []
    for line in ip("netns", "list").splitlines():
        name = line.split()[0] if line.split() else ""
        found = re.fullmatch(rf"{re.escape(prefix)}(\d+)-.+", name)
        if found and not _alive(int(found.group(1))):
            Namespace(name).delete()
            removed.append(name)
    return removed


class Network:
    """A hub and machines linked to it, all deleted by close(); machine N is 10.199.N.2, the hub 10.199.N.1 to it."""

    def __init__(self, prefix: str = PREFIX) -> None:
        remove_stale(prefix)
        self.prefix = f"{prefix}{os.getpid()}-{next(_runs)}-"
        self.namespaces: list[Namespace] = []
        self.hub = self._add("hub")
        self.links = 0
        self.services = 0

    def _add(self, name: str) -> Namespace:
        namespace = Namespace(f"{self.prefix}{name}")
        ip("netns", "add", namespace.name)
        self.namespaces.append(namespace)
        ip("-n", namespace.name, "link", "set", "dev", "lo", "up")
        return namespace

    def service_address(self) -> str:
        """A new address on the hub's loopback for one service, reached by every machine over its link."""
        self.services += 1
        address = f"{SERVICES}.{self.services}"
        ip("-n", self.hub.name, "addr", "add", f"{address}/32", "dev", "lo")
        return address

    def machine(self, name: str) -> tuple[Namespace, str]:
        """A new namespace with a veth link to the hub (made inside the two, never in the host's), and its address."""
        self.links += 1
        machine = self._add(name)
        subnet = f"10.199.{self.links}"
        # both ends are created directly in their namespaces: no interface, even briefly, in the host's
        ip("link", "add", "name", "to-hub", "netns", machine.name, "type", "veth",
           "peer", "name", f"to-{name}"[:15], "netns", self.hub.name)
        ip("-n", machine.name, "addr", "add", f"{subnet}.2/24", "dev", "to-hub")
        ip("-n", self.hub.name, "addr", "add", f"{subnet}.1/24", "dev", f"to-{name}"[:15])
        ip("-n", machine.name, "link", "set", "dev", "to-hub", "up")
        ip("-n", self.hub.name, "link", "set", "dev", f"to-{name}"[:15], "up")
        ip("-n", machine.name, "route", "add", f"{SERVICES}.0/24", "via", f"{subnet}.1")
        return machine, f"{subnet}.2"

    def close(self) -> None:
        """Delete every namespace of this run, machines first; idempotent."""
        errors = []
        for namespace in reversed(self.namespaces):
            try:
                namespace.delete()
            except RuntimeError as exc:
                errors.append(str(exc))
        self.namespaces.clear()
        if errors:
            raise RuntimeError("; ".join(errors))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
