#!/bin/sh
# wsexec self-registration, served by GET /wsexec/register.sh to the holder of a registration token.
# Run it on the new server as the login user the registration names (curl ... | sh, or | sudo -u USER sh). It:
#   1. adds the wsexec service's SSH public key to that user's ~/.ssh/authorized_keys (once: a second run adds nothing);
#   2. reads this server's ed25519 host key (sshd's, which wsexec will pin: no other key is ever accepted);
#   3. registers this server with wsexec (POST /wsexec/register, with the token).
# Optional variables (e.g. curl ... | WSEXEC_ADDRESS=10.0.0.5 sh):
#   WSEXEC_ADDRESS        address wsexec connects to (default: the address wsexec sees this server's request from)
#   WSEXEC_PORT           sshd's port (default: the registration's, else 22)
#   WSEXEC_NAME           this server's name, for the audit log (default: uname -n)
#   WSEXEC_HOST_KEY_FILE  the public host key to register (default: /etc/ssh/ssh_host_ed25519_key.pub)
set -eu

# @SETTINGS@

fail() {
    echo "wsexec register: $*" >&2
    exit 1
}

# a JSON string: backslashes and double quotes escaped (the values here hold no control characters)
json() {
    printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"
}

[ "$(id -un)" = "$login_user" ] ||
    fail "run this as $login_user, the registration's login user (e.g. curl ... | sudo -u $login_user sh)"
command -v curl >/dev/null 2>&1 || fail "curl is needed"

# 1. The service's key, once (compared by its key data: options or a comment on an existing line don't matter).
umask 077
ssh_dir="${HOME:?HOME is not set}/.ssh"
authorized_keys="$ssh_dir/authorized_keys"
mkdir -p "$ssh_dir"
chmod 700 "$ssh_dir"
touch "$authorized_keys"
chmod 600 "$authorized_keys"
key_data=$(printf '%s\n' "$service_key" | awk '{ print $2 }')
if awk -v key="$key_data" '{ for (i = 1; i <= NF; i++) if ($i == key) found = 1 } END { exit !found }' \
    "$authorized_keys"; then
    echo "wsexec register: the service's key is already in $authorized_keys"
else
    # a last line without its newline would run into the key
    if [ -s "$authorized_keys" ] && [ -n "$(tail -c 1 "$authorized_keys")" ]; then
        echo >>"$authorized_keys"
    fi
    printf '%s\n' "$service_key" >>"$authorized_keys"
    echo "wsexec register: added the service's key to $authorized_keys"
fi

# 2. This server's host key.
host_key_file="${WSEXEC_HOST_KEY_FILE:-/etc/ssh/ssh_host_ed25519_key.pub}"
[ -r "$host_key_file" ] || fail "cannot read $host_key_file (sshd's ed25519 host key; set WSEXEC_HOST_KEY_FILE)"
host_key=$(awk 'NF >= 2 { print $1 " " $2; exit }' "$host_key_file")
[ -n "$host_key" ] || fail "$host_key_file holds no public key"

# 3. Register.
body="{\"name\": $(json "${WSEXEC_NAME:-$(uname -n)}"), \"host_key\": $(json "$host_key")"
if [ -n "${WSEXEC_ADDRESS:-}" ]; then
    body="$body, \"address\": $(json "$WSEXEC_ADDRESS")"
fi
if [ -n "${WSEXEC_PORT:-}" ]; then
    case "$WSEXEC_PORT" in
        *[!0-9]*) fail "WSEXEC_PORT must be a number, not $WSEXEC_PORT" ;;
    esac
    body="$body, \"port\": $WSEXEC_PORT"
fi
body="$body}"
# the token goes to curl on its standard input (a config line), never on a command line that ps shows
answer=$(printf 'header = "Authorization: Bearer %s"\n' "$token" |
    curl -sS -K - -X POST -H 'Content-Type: application/json' --data-binary "$body" -w '\n%{http_code}' \
        "$wsexec_url/wsexec/register") || fail "could not reach $wsexec_url"
status=$(printf '%s\n' "$answer" | tail -n 1)
reply=$(printf '%s\n' "$answer" | sed '$d')
if [ "$status" != 201 ]; then
    fail "registration refused (HTTP $status): $reply"
fi
echo "wsexec register: registered: $reply"
