#!/usr/bin/env bash
# Start the README quickstart's demo SSH host on 127.0.0.1:2222 in the foreground; Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m scripts.demo_host "$@"
