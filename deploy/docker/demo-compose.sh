#!/usr/bin/env bash
# `make demo-compose`: the docker compose demo run for real.
#
#   demo-compose.sh DEMO_BIN ENVOY_BIN
#
# Brings up docker-compose.yml (envoy + echo, the default profile) under a project name of its
# own with the listener and admin published on free loopback ports, waits until a request is
# forwarded, replays the walkthrough with `DEMO_BIN --port PORT` (e2e/src/demo.rs, the same
# steps as `make demo`), and always takes the project down again (`down -v`); the containers'
# logs are printed when anything failed.
#
# Images: ENVOY_IMAGE / ECHO_IMAGE when set; otherwise the official ones in docker-compose.yml if
# they can be pulled, else the stand-ins built by standins.sh from Debian's packages and
# ENVOY_BIN (no registry is reachable on the project's machines).
set -euo pipefail
demo_bin="${1:?usage: demo-compose.sh DEMO_BIN ENVOY_BIN}"
envoy_bin="${2:?usage: demo-compose.sh DEMO_BIN ENVOY_BIN}"
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
test -x "$demo_bin" || { echo "demo-compose: $demo_bin is missing (cargo build -p consumer-auth-e2e --bin demo)" >&2; exit 1; }
test -f filters/consumer_auth.wasm || { echo "demo-compose: filters/consumer_auth.wasm is missing (make build)" >&2; exit 1; }

now() { date +%s%N; }
# seconds since a `now`, one decimal
lap() { local ms=$(( ($(now) - $1) / 1000000 )); printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)); }
t0=$(now)
"$here/daemon.sh"
if docker compose version >/dev/null 2>&1; then compose=(docker compose); else compose=(docker-compose); fi

project="consumer-auth-demo-$$"
run() { "${compose[@]}" -p "$project" "$@"; }

t=$(now)
if [ -n "${ENVOY_IMAGE:-}${ECHO_IMAGE:-}" ]; then
  echo "demo-compose: images from the environment: ENVOY_IMAGE=${ENVOY_IMAGE:-(default)} ECHO_IMAGE=${ECHO_IMAGE:-(default)}"
elif run pull -q envoy echo >/dev/null 2>&1; then
  echo "demo-compose: the official images of docker-compose.yml"
else
  echo "demo-compose: the official images cannot be pulled here; building stand-ins (deploy/docker/standins.sh)"
  standins="$("$here/standins.sh" "$envoy_bin")"
  while IFS= read -r line; do export "${line?}"; done <<<"$standins"
  echo "demo-compose: ENVOY_IMAGE=$ENVOY_IMAGE ECHO_IMAGE=$ECHO_IMAGE"
fi
images_s=$(lap "$t")

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port="$(free_port)"
export DEMO_LISTEN="127.0.0.1:$port" DEMO_ADMIN_LISTEN="127.0.0.1:$(free_port)"

ok=0
finish() {
  if [ "$ok" != 1 ]; then
    echo "demo-compose: FAILED; the containers' logs:" >&2
    run logs --no-color >&2 || true
  fi
  t=$(now)
  run down -v --remove-orphans >/dev/null 2>&1 || echo "demo-compose: docker compose down failed" >&2
  echo "demo-compose: down in $(lap "$t") s"
}
trap finish EXIT

t=$(now)
run up -d
# Ready when a request is forwarded: the filter answered and the echo upstream is up.
ready=
for _ in $(seq 1 120); do
  if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/anon" || true)" = 200 ]; then ready=1; break; fi
  sleep 0.5
done
[ -n "$ready" ] || { echo "demo-compose: nothing was forwarded through http://127.0.0.1:$port within 60 s" >&2; exit 1; }
up_s=$(lap "$t")

t=$(now)
"$demo_bin" --port "$port"
walk_s=$(lap "$t")
ok=1
echo "demo-compose: images ${images_s} s, up ${up_s} s, walkthrough ${walk_s} s (total so far $(lap "$t0") s)"
