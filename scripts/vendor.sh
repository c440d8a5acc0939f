#!/usr/bin/env bash
# Refresh the console's vendored JavaScript (wsexec/ui/static/vendor) from the npm registry with `npm pack`:
# the versions are the ones wsexec/ui/static/vendor/VERSIONS names (edit it to upgrade), each package's built ES
# module, its CSS and its LICENSE are copied, nothing else. No build step and no CDN at run time.
# Usage: scripts/vendor.sh   (make vendor)
set -euo pipefail
cd "$(dirname "$0")/.."
vendor=wsexec/ui/static/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# dir in vendor/ | files to keep from the package (paths inside it; the first is the module the console imports)
declare -A keep=(
  [@xterm/xterm]="xterm lib/xterm.mjs css/xterm.css"
  [@xterm/addon-fit]="addon-fit lib/addon-fit.mjs"
  [ansi_up]="ansi_up ansi_up.js"
)
while read -r name version; do
  case $name in ''|'#'*) continue ;; esac
  [ -n "${keep[$name]:-}" ] || { echo "vendor: $name is not known to scripts/vendor.sh" >&2; exit 1; }
  read -r dir files <<<"${keep[$name]}"
  tarball=$(cd "$work" && npm pack --silent "$name@$version")
  mkdir -p "$work/$dir" && tar xzf "$work/$tarball" -C "$work/$dir"
  rm -rf "${vendor:?}/$dir" && mkdir -p "$vendor/$dir"
  for file in $files LICENSE; do
    # no source maps are shipped: drop the comment that would make devtools ask for them
    sed '/^\/\/# sourceMappingURL=/d' "$work/$dir/package/$file" > "$vendor/$dir/$(basename "$file")"
  done
  echo "vendor: $name@$version -> $vendor/$dir"
done < "$vendor/VERSIONS"
