#!/usr/bin/env bash
# Idempotent install of everything wsexec needs on Debian: system packages and a venv from pinned requirements.
# Usage: scripts/setup.sh [dev]   ("dev" adds the test tools and the daemons the tests start: sshd, nginx)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(redis-server openssh-client)
[ "${1:-}" = dev ] && packages+=(openssh-server nginx-light ansible-core redis-sentinel
                                 chromium chromium-driver fonts-dejavu-core  # the console's browser tests
                                 sudo  # run_as tests
                                 iproute2  # network namespaces of tests/test_machines.py
                                 wrk)  # make bench-http

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "setup: need root to install: ${missing[*]}" >&2; exit 1; }
  echo "setup: installing ${missing[*]}"
  # Install the daemons without starting their system services: wsexec runs its own private instances.
  policy=/usr/sbin/policy-rc.d
  saved=""
  if [ -e "$policy" ]; then saved=$(mktemp); cp -p "$policy" "$saved"; fi
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"
  restore() { if [ -n "$saved" ]; then mv "$saved" "$policy"; else rm -f "$policy"; fi; }
  trap restore EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}"; }
  restore; trap - EXIT
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=.venv/.installed-${1:-run}
reqs=(requirements.txt)
[ "${1:-}" = dev ] && reqs+=(requirements-dev.txt)
# wsexec itself goes in editable (the pinned requirements bring its dependencies), so `python -m workers`, gunicorn
# and the console scripts (wsexec-worker, wsexec-auth) import this checkout from any directory.
installed_here() { [ "$(cd / && "$OLDPWD/.venv/bin/python" -c 'import wsexec; print(wsexec.__file__)' 2>/dev/null)" \
                     = "$PWD/wsexec/__init__.py" ]; }
if [ ! -f "$stamp" ] || [ -n "$(find "${reqs[@]}" pyproject.toml -newer "$stamp")" ] || ! installed_here; then
  .venv/bin/pip install -q --disable-pip-version-check $(printf -- '-r %s ' "${reqs[@]}")
  .venv/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
  touch "$stamp"
fi
