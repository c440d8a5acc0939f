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
# It supervises them: one that dies is started again after a backoff (1 s doubling to 30 s, back to 1 s once it
# stayed up 60 s), the others keep serving. Redis too, with the same redis.conf (password) and AOF directory:
# the AOF gives back every acknowledged write, and the workers and gunicorn ride out the gap on their client's
# retries, which beats stopping everything; a Redis that cannot start again says why at each attempt.
redis_port=${WSEXEC_REDIS_PORT:-6390}
redis_password="" names=() pids=() started=() delays=() timer_pid=""
redis_cli() { REDISCLI_AUTH=$redis_password redis-cli -p "$redis_port" "$@"; }
alive() { local pid; for pid; do kill -0 "$pid" 2>/dev/null && return 0; done; return 1; }
spawn() {  # start child $1 (an index into names) in its own session
  local i=$1
  case ${names[$i]} in
    redis) setsid redis-server var/redis/redis.conf --port "$redis_port" --bind 127.0.0.1 --dir "$root/var/redis" \
             --appendonly yes --appendfsync everysec --save '' --daemonize no --logfile "$root/var/log/redis.log" \
             </dev/null & ;;
    gunicorn) setsid .venv/bin/gunicorn -c gunicorn.conf.py --bind "$WSEXEC_BIND" wsgi:app </dev/null & ;;
    worker*) setsid .venv/bin/python -m workers </dev/null >>"var/log/${names[$i]// /-}.log" 2>&1 & ;;
  esac
  pids[$i]=$! started[$i]=$SECONDS
}
add() { names+=("$1") delays+=(1); spawn $((${#names[@]} - 1)); }
stop_all() {
  local status=$? i others=() redis_pid=""
  trap - INT TERM EXIT
  echo "run: stopping"
  [ -n "$timer_pid" ] && kill "$timer_pid" 2>/dev/null
  for i in "${!names[@]}"; do
    if [ "${names[$i]}" = redis ]; then redis_pid=${pids[$i]}; else others+=("${pids[$i]}"); fi
  done
  # gunicorn and the workers first (SIGTERM: graceful), while Redis is still there to record their last state.
  if [ ${#others[@]} -gt 0 ]; then
    kill -TERM "${others[@]}" 2>/dev/null || true
    for _ in $(seq 100); do alive "${others[@]}" || break; sleep 0.1; done
    for pid in "${others[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
    wait "${others[@]}" 2>/dev/null || true
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
  export WSEXEC_REDIS_URL="redis://:$redis_password@127.0.0.1:$redis_port/0"
  if (exec 3<>/dev/tcp/127.0.0.1/$redis_port) 2>/dev/null; then
    echo "run: something already serves 127.0.0.1:$redis_port (a previous run?): stop it with" \
         "'REDISCLI_AUTH=\$(cat var/redis.password) redis-cli -p $redis_port shutdown'" >&2
    exit 1
  fi
  # hash-max-listpack-value: a task's hash stays compact with a script (or error) over 64 bytes (README, step 1)
  (umask 077; printf 'requirepass %s\nmaxmemory %s\nmaxmemory-policy noeviction\nhash-max-listpack-value 1024\n' \
    "$redis_password" "${WSEXEC_REDIS_MAXMEMORY:-1gb}" > var/redis/redis.conf)
  add redis
  for _ in $(seq 100); do redis_cli ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
  redis_cli ping 2>/dev/null | grep -q PONG \
    || { echo "run: redis did not start, see var/log/redis.log" >&2; tail -n 5 var/log/redis.log >&2; exit 1; }
fi

for i in $(seq "${WSEXEC_WORKERS:-2}"); do add "worker $i"; done
add gunicorn
gunicorn=$((${#names[@]} - 1))

host=${WSEXEC_BIND%:*} port=${WSEXEC_BIND##*:}
until (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
  kill -0 "${pids[$gunicorn]}" 2>/dev/null || { echo "run: gunicorn exited, see its output above" >&2; exit 1; }
  sleep 0.2
done
cat <<EOF

wsexec is running (Ctrl-C stops it; logs in var/log/):
  base URL  http://$WSEXEC_BIND/wsexec
  health    http://$WSEXEC_BIND/wsexec/health
EOF
[ -n "${made_admin:-}" ] && echo "  login     admin, password: cat var/admin.password"
echo "  see README quickstart for a first task (make demo-host gives you a loopback SSH host)"
echo "  client    .venv/bin/wsexec --url http://$WSEXEC_BIND --user admin tasks   (wsexec --help)"
echo

# Until Ctrl-C or TERM: restart what exits. It polls, once a second: bash's `wait -n` misses a child that died
# while the script was busy; the pauses wait in the background, so a signal is handled at once.
pause() { sleep "$1" & timer_pid=$!; wait "$timer_pid" || true; timer_pid=""; }
while pause 1; do
  for i in "${!pids[@]}"; do
    alive "${pids[$i]}" && continue
    status=0
    wait "${pids[$i]}" 2>/dev/null || status=$?
    [ $((SECONDS - started[i])) -lt 60 ] || delays[i]=1
    echo "run: ${names[$i]} exited with status $status; restarting in ${delays[$i]} s" >&2
    pause "${delays[$i]}"
    kill -KILL -- "-${pids[$i]}" 2>/dev/null || true  # what it forked (gunicorn's workers) goes with it
    spawn "$i"
    delays[i]=$((delays[i] * 2 > 30 ? 30 : delays[i] * 2))
  done
done
