#!/usr/bin/env bash
# Run wsexec locally (what `make run` does after scripts/setup.sh): a private Redis with AOF, the RQ workers and
# gunicorn, all state under ./var; Ctrl-C stops exactly the processes started here. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
mkdir -p var/log var/ssh var/redis

if [ -z "${WSEXEC_USERS:-}" ]; then
  if [ ! -s var/admin.password ]; then
    (umask 077; .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(18))' > var/admin.password)
  fi
  WSEXEC_USERS="admin:admin:$(.venv/bin/python -m wsexec.auth hash "$(cat var/admin.password)")"
  export WSEXEC_USERS
  made_admin=1
fi
if [ -z "${WSEXEC_SSH_KEY:-}" ]; then
  [ -f var/ssh/id_ed25519 ] || ssh-keygen -q -t ed25519 -N '' -C "wsexec@$(hostname)" -f var/ssh/id_ed25519
  export WSEXEC_SSH_KEY=$root/var/ssh/id_ed25519
fi
export WSEXEC_KNOWN_HOSTS=${WSEXEC_KNOWN_HOSTS:-$root/var/ssh/known_hosts}
touch "$WSEXEC_KNOWN_HOSTS"
export WSEXEC_BIND=${WSEXEC_BIND:-127.0.0.1:5000}

# Children run under setsid (own session and process group): Ctrl-C reaches only this script, which then
# stops them in order, and a final SIGKILL to their groups also takes gunicorn's and RQ's forked children.
redis_pid="" redis_password="" other_pids=()
redis_cli() { REDISCLI_AUTH=$redis_password redis-cli -p 6390 "$@"; }
alive() { local pid; for pid; do kill -0 "$pid" 2>/dev/null && return 0; done; return 1; }
stop_all() {
  local status=$?
  trap - INT TERM EXIT
  echo "run: stopping"
  # gunicorn and the workers first (SIGTERM: graceful), while Redis is still there to record their last state.
  if [ ${#other_pids[@]} -gt 0 ]; then
    kill -TERM "${other_pids[@]}" 2>/dev/null || true
    for _ in $(seq 100); do alive "${other_pids[@]}" || break; sleep 0.1; done
    for pid in "${other_pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
    wait "${other_pids[@]}" 2>/dev/null || true
  fi
  if [ -n "$redis_pid" ]; then
    redis_cli shutdown >/dev/null 2>&1 || kill -TERM "$redis_pid" 2>/dev/null || true  # flushes the AOF
    wait "$redis_pid" 2>/dev/null || true
  fi
  exit "$status"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -z "${WSEXEC_REDIS_URL:-}" ]; then
  # A private Redis that wants a password (made on the first run, mode 600): the hosts wsexec runs scripts on can
  # often reach this machine, and must not rewrite its tasks. Neither the password nor the URL is ever printed;
  # REDISCLI_AUTH gives it to redis-cli, redis.conf to redis-server, so no command line shows it.
  if [ ! -s var/redis.password ]; then
    (umask 077; .venv/bin/python -c 'import secrets; print(secrets.token_hex(32))' > var/redis.password)
  fi
  redis_password=$(cat var/redis.password)
  export WSEXEC_REDIS_URL="redis://:$redis_password@127.0.0.1:6390/0"
  if (exec 3<>/dev/tcp/127.0.0.1/6390) 2>/dev/null; then
    echo "run: something already serves 127.0.0.1:6390 (a previous run?): stop it with" \
         "'REDISCLI_AUTH=\$(cat var/redis.password) redis-cli -p 6390 shutdown'" >&2
    exit 1
  fi
  (umask 077; printf 'requirepass %s\nmaxmemory %s\nmaxmemory-policy noeviction\n' \
    "$redis_password" "${WSEXEC_REDIS_MAXMEMORY:-1gb}" > var/redis/redis.conf)
  setsid redis-server var/redis/redis.conf --port 6390 --bind 127.0.0.1 --dir "$root/var/redis" --appendonly yes \
    --appendfsync everysec --save '' --daemonize no --logfile "$root/var/log/redis.log" </dev/null &
  redis_pid=$!
  for _ in $(seq 100); do redis_cli ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
  redis_cli ping 2>/dev/null | grep -q PONG \
    || { echo "run: redis did not start, see var/log/redis.log" >&2; tail -n 5 var/log/redis.log >&2; exit 1; }
fi

for i in $(seq "${WSEXEC_WORKERS:-2}"); do
  setsid .venv/bin/python -m workers </dev/null >"var/log/worker-$i.log" 2>&1 &
  other_pids+=($!)
done
setsid .venv/bin/gunicorn -c gunicorn.conf.py --bind "$WSEXEC_BIND" wsgi:app </dev/null &
gunicorn_pid=$!
other_pids+=("$gunicorn_pid")

host=${WSEXEC_BIND%:*} port=${WSEXEC_BIND##*:}
until (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
  kill -0 "$gunicorn_pid" 2>/dev/null || { echo "run: gunicorn exited" >&2; exit 1; }
  sleep 0.2
done
cat <<EOF

wsexec is running (Ctrl-C stops it; logs in var/log/):
  base URL  http://$WSEXEC_BIND/wsexec
  health    http://$WSEXEC_BIND/wsexec/health
EOF
[ -n "${made_admin:-}" ] && echo "  login     admin, password: cat var/admin.password"
echo "  see README quickstart for a first task (make demo-host gives you a loopback SSH host)"
echo

# Until Ctrl-C, or until any of our processes dies: then stop the rest.
wait -n "${other_pids[@]}" ${redis_pid:+"$redis_pid"} || true
echo "run: a process exited; see var/log/" >&2
exit 1
