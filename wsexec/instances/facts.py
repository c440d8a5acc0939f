"""Facts: what an instance is (os, kernel, cpus, memory, disks, uptime), gathered by one task in one round trip."""

from __future__ import annotations

import json
import time
from typing import Any

from marshmallow import Schema

from wsexec import context
from wsexec.commands import service as commands
from wsexec.exceptions import TaskFailed
from wsexec.waits import wait_field

NAME = "facts"
DEFAULT_WAIT = 30
TIMEOUT = 120  # seconds: a hung df (a dead NFS mount) must not hold a worker thread for the default hour

# POSIX sh, awk, sed, tr: prints one JSON object. Strings are stripped of control characters and escaped;
# numbers that are not plain decimals print as null; %.0f keeps awk (mawk) from printing byte counts as 1.2e+10.
SCRIPT = r"""
str() { printf '"%s"' "$(printf '%s' "$1" | tr -d '\000-\037' | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
num() { case $1 in ''|*[!0-9.]*|*.*.*|.*|*.) printf null ;; *) printf %s "$1" ;; esac; }
os=$(for f in /etc/os-release /usr/lib/os-release; do [ -r $f ] && { . $f; break; }; done; printf %s "$PRETTY_NAME")
printf '{"os":%s,"kernel":%s,"cpu_cores":%s,' "$(str "$os")" "$(str "$(uname -r)")" \
  "$(num "$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)")"
awk '/^MemTotal:/ { t = $2 * 1024 } /^MemAvailable:/ { a = $2 * 1024 }
  END { printf "\"memory\":{\"total\":%s,\"available\":%s},", t == "" ? "null" : sprintf("%.0f", t),
        a == "" ? "null" : sprintf("%.0f", a) }' /proc/meminfo
df -P -k 2>/dev/null | tr -d '\000-\011\013-\037' | sed 's/\\/\\\\/g; s/"/\\"/g' | awk 'BEGIN { printf "\"disks\":[" }
  NR > 1 && $2 ~ /^[0-9]+$/ { m = $6; for (i = 7; i <= NF; i++) m = m " " $i
    printf "%s{\"filesystem\":\"%s\",\"mount\":\"%s\",\"size\":%.0f,\"used\":%.0f,\"available\":%.0f}",
      n++ ? "," : "", $1, m, $2 * 1024, $3 * 1024, $4 * 1024 }
  END { printf "]," }'
printf '"uptime_seconds":%s}\n' "$(num "$(cut -d ' ' -f 1 /proc/uptime)")"
""".strip()


class FactsArgs(Schema):
    wait = wait_field(load_default=DEFAULT_WAIT, metadata={"description": "seconds (504 with the task id if longer)"})


def gather(instance_id: int, wait: int, created_by: str) -> dict[str, Any]:
    """Run the facts script as a task, wait for it, store what it printed on the instance; the instance."""
    context.store().get_instance(instance_id)  # 404 before anything is created
    task = commands.start(NAME, SCRIPT, instance_id, None, created_by, timeout=TIMEOUT)
    task = commands.finished(task["id"], wait)
    output = commands.stdout(task["id"])
    try:
        facts = json.loads(output)
    except ValueError:
        facts = None
    if not isinstance(facts, dict):
        raise TaskFailed(f"task {task['id']} did not print the facts (rc {task.get('rc')})",
                         {"task": task["id"], "rc": task.get("rc"), "stdout": output[-1000:]})
    return context.store().update_instance(instance_id, {"facts": facts, "facts_at": time.time()})
