"""Debian's nginx serving the shipped site file (nginx/wsexec.conf) on loopback, for the deployment tests and the
benchmark: only the lines marked "(test: ...)" change (listen addresses, certificate, upstream)."""

from __future__ import annotations

import os
import pwd
import re
import socket
import subprocess
from pathlib import Path

from wsexec.testing.servers import Daemon, free_port

NGINX = "/usr/sbin/nginx"

# The main nginx.conf around the site file: what Debian's /etc/nginx/nginx.conf does, with every path in the test's
# directory and the worker processes running as whoever runs the tests.
MAIN_CONF = """\
user {user};
worker_processes 1;
error_log {dir}/error.log;
events {{ worker_connections {connections}; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/wsexec.conf;
}}
"""


def render_site(site: Path, upstream: str, http_port: int, https_port: int, cert: Path, key: Path) -> str:
    """The site file with only its lines marked "(test: ...)" changed, each exactly once."""
    substitutions = {
        "upstream": ("server 127.0.0.1:5000;", f"server {upstream};"),
        "http listen": ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        "https listen": ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
        "certificate": (r"ssl_certificate \S+;", f"ssl_certificate {cert};"),
        "key": (r"ssl_certificate_key \S+;", f"ssl_certificate_key {key};"),
    }
    lines = []
    for line in site.read_text().splitlines():
        marker = re.search(r"\(test: ([a-z ]+)\)", line)
        if marker:
            pattern, replacement = substitutions.pop(marker.group(1))
            line, count = re.subn(pattern, replacement, line)
            if count != 1:
                raise ValueError(f"{site}: marked line no longer matches {pattern!r}: {line}")
        lines.append(line)
    if substitutions:
        raise ValueError(f"{site}: markers gone: {list(substitutions)}")
    return "\n".join(lines) + "\n"


class Nginx(Daemon):
    """nginx in the foreground as our child, serving the rendered site file on two loopback ports."""

    name = "nginx"

    def __init__(self, workdir: Path, upstream: str, site: Path, connections: int = 64) -> None:
        super().__init__(workdir, "127.0.0.1", free_port())
        self.http_port = free_port()
        self.cert, self.key = self.workdir / "cert.pem", self.workdir / "key.pem"
        self.upstream, self.site, self.connections = upstream, site, connections

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.port}/wsexec"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/wsexec"

    def start(self) -> Nginx:
        """Make a self-signed certificate, render the site file, check it (nginx -t), serve; no-op if running."""
        if self.running:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", str(self.key), "-out", str(self.cert)], check=True, capture_output=True)
        rendered = render_site(self.site, self.upstream, self.http_port, self.port, self.cert, self.key)
        (self.workdir / "wsexec.conf").write_text(rendered)
        user = pwd.getpwuid(os.geteuid()).pw_name
        main = MAIN_CONF.format(user=user, dir=self.workdir, connections=self.connections)
        (self.workdir / "nginx.conf").write_text(main)
        command = [NGINX, "-p", str(self.workdir), "-e", str(self.workdir / "error.log"),
                   "-c", str(self.workdir / "nginx.conf"), "-g", f"daemon off; pid {self.workdir}/nginx.pid;"]
        subprocess.run([*command, "-t", "-q"], check=True, capture_output=True)
        self._spawn(command, self._listening)
        return self

    def _listening(self) -> bool:
        """Both servers accept connections."""
        for port in (self.port, self.http_port):
            try:
                socket.create_connection((self.host, port), timeout=1).close()
            except OSError:
                return False
        return True
