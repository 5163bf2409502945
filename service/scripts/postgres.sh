#!/usr/bin/env bash
# PostgreSQL for the service's tests and benchmarks: Debian's server (installed if missing), a
# throwaway cluster in a temporary folder on a free loopback port. The server refuses to run as
# root, so as root everything runs as the `postgres` user.
#
#   postgres.sh start STATE_DIR   start (or keep) the cluster; STATE_DIR/url, /bin, /dir say where
#   postgres.sh stop STATE_DIR    stop it and remove its folder
set -euo pipefail
cmd=${1:?start or stop}
state=${2:?state dir}

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

find_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1
}

case "$cmd" in
start)
  bin=$(find_bin)
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "postgres: installing Debian's postgresql"
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
    bin=$(find_bin)
  fi
  if [ -f "$state/url" ] && [ -d "$(cat "$state/dir")" ] \
      && "$bin/pg_isready" -q -h 127.0.0.1 -p "$(cat "$state/port")"; then
    echo "postgres: already running: $(cat "$state/url")"
    exit 0
  fi
  dir=$(mktemp -d /tmp/consumer-auth-pg.XXXXXX)
  chmod 755 "$dir"
  if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  as_pg "$bin/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=400" start >/dev/null
  mkdir -p "$state"
  echo "postgres://postgres@127.0.0.1:$port/postgres" > "$state/url"
  echo "$bin" > "$state/bin"
  echo "$dir" > "$state/dir"
  echo "$port" > "$state/port"
  echo "postgres: $(cat "$state/url") ($dir)"
  ;;
stop)
  [ -f "$state/dir" ] || exit 0
  dir=$(cat "$state/dir")
  bin=$(cat "$state/bin")
  as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$dir" "$state"
  echo "postgres: stopped"
  ;;
*)
  echo "usage: $0 start|stop STATE_DIR" >&2
  exit 2
  ;;
esac
