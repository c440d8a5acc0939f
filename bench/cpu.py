"""CPU time per component (client, api, workers, redis, sshd), exact, from cgroup v2 `cpu.stat`.

Wall times on this shared 2-core machine move with everyone else's load; CPU time per command does not, and it
is what says where the time goes. Each component runs in its own cgroup, which also counts the processes that
came and went during a run (sshd sessions, login shells, ssh and ansible children).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

# api: gunicorn; workers: `python -m workers`; rq: the RQ floor's worker processes (bench/rq_floor.py)
COMPONENTS = ("client", "api", "workers", "rq", "redis", "sshd")


def _cgroup2_root() -> Path | None:
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount, kind, *_ = line.split()
        if kind == "cgroup2":
            return Path(mount)
    return None


class CpuGroups:
    """One cgroup per component under a cgroup of our own; `close()` puts us back and removes them."""

    def __init__(self) -> None:
        root = _cgroup2_root()
        self.home: Path | None = None
        self.base: Path | None = None
        if root is None or not os.access(root, os.W_OK):
            return
        own = Path("/proc/self/cgroup").read_text().splitlines()
        self.home = root / next(line for line in own if line.startswith("0::")).split("::", 1)[1].lstrip("/")
        self.base = self.home / f"wsexec-bench-{os.getpid()}"
        for name in COMPONENTS:
            (self.base / name).mkdir(parents=True, exist_ok=True)
        self.add("client", os.getpid())  # ssh and ansible, started by us, are counted as client too

    @property
    def available(self) -> bool:
        return self.base is not None

    def add(self, component: str, pids: Iterable[int] | int) -> None:
        """Move running processes (and so all they fork from now on) into a component."""
        if self.base is None:
            return
        for pid in [pids] if isinstance(pids, int) else pids:
            (self.base / component / "cgroup.procs").write_text(str(pid))

    def join(self, component: str) -> None:
        """For Popen(preexec_fn=...): the child joins the component before it execs."""
        self.add(component, os.getpid())

    def usage(self) -> dict[str, float]:
        """CPU seconds used so far by each component."""
        if self.base is None:
            return {}
        return {name: self._usec(self.base / name) / 1e6 for name in COMPONENTS}

    @staticmethod
    def _usec(group: Path) -> int:
        for line in (group / "cpu.stat").read_text().splitlines():
            key, value = line.split()
            if key == "usage_usec":
                return int(value)
        raise RuntimeError(f"no usage_usec in {group}/cpu.stat")

    @staticmethod
    def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {name: round(after[name] - before[name], 4) for name in before}

    def close(self) -> None:
        """Move whatever is left (us) back home and remove the cgroups; call after stopping every process."""
        if self.base is None or self.home is None:
            return
        for name in COMPONENTS:
            group = self.base / name
            for pid in (group / "cgroup.procs").read_text().split():
                try:
                    (self.home / "cgroup.procs").write_text(pid)
                except (ProcessLookupError, OSError):
                    pass  # exited meanwhile
            try:
                group.rmdir()
            except OSError as exc:  # something we started still runs: say so rather than hide it
                print(f"bench: cannot remove {group}: {exc}")
        try:
            self.base.rmdir()
        except OSError:
            pass
