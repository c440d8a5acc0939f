"""A loopback sshd on 127.0.0.1:2222 that trusts the service key: the README quickstart's first instance."""

import os
import signal
import sys
from pathlib import Path

from wsexec.testing import SshServer, ensure_login_user, generate_keypair

ROOT = Path(__file__).resolve().parent.parent
HOST, PORT, USER = "127.0.0.1", 2222, "wsexec-demo"


def remember_host(known_hosts: Path, line: str) -> None:
    """Put this host's key line in known_hosts, replacing an older line for the same [host]:port."""
    name = line.split()[0]
    old = known_hosts.read_text().splitlines() if known_hosts.exists() else []
    kept = [entry for entry in old if entry.split(" ", 1)[0] != name]
    known_hosts.parent.mkdir(parents=True, exist_ok=True)
    known_hosts.write_text("".join(f"{entry}\n" for entry in [*kept, line]))


def main() -> None:
    """Start the demo host, print what to declare, serve until Ctrl-C."""
    default_key = ROOT / "var/ssh/id_ed25519"
    key = Path(os.environ.get("WSEXEC_SSH_KEY") or default_key)
    if key == default_key:
        generate_keypair(key)  # the same key `make run` creates, whichever runs first
    elif not Path(f"{key}.pub").exists():
        sys.exit(f"demo-host: {key}.pub not found (WSEXEC_SSH_KEY)")
    known_hosts = Path(os.environ.get("WSEXEC_KNOWN_HOSTS") or ROOT / "var/ssh/known_hosts")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # so the sshd is stopped on TERM too
    server = SshServer(ROOT / "var/demo-host", HOST, PORT, ensure_login_user(USER), Path(f"{key}.pub")).start()
    remember_host(known_hosts, server.known_hosts_line)
    print(f"demo host: sshd on {HOST}:{PORT}, login user {USER}, host key added to {known_hosts}")
    print(f'declare it: {{"ip": "{HOST}", "port": {PORT}, "tag": "demo", "user": "{USER}"}}   (Ctrl-C stops it)')
    try:
        server.proc.wait()  # type: ignore[union-attr]
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
