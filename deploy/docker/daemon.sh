#!/usr/bin/env bash
# Make sure a Docker client, a running daemon, Compose and debootstrap are there.
#
# Installs Debian's docker.io, docker-compose and debootstrap when a command is missing. When no
# daemon answers, starts Debian's dockerd with its defaults (no flags, no daemon.json written),
# logging to $CONSUMER_AUTH_CACHE/dockerd.log, and leaves it running for the next target. A
# daemon that is already running is used as it is: nothing here changes its configuration.
set -euo pipefail
cache="${CONSUMER_AUTH_CACHE:-$HOME/.cache/consumer-auth}"
mkdir -p "$cache"
if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi

need=()
command -v docker >/dev/null || need+=(docker.io)
command -v dockerd >/dev/null || docker info >/dev/null 2>&1 || need+=(docker.io)
docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null || need+=(docker-compose)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  echo "docker: installing Debian's ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  echo "docker: no daemon answers; starting dockerd (log: $cache/dockerd.log)"
  # setsid: the daemon outlives this make target (it is shared by the docker targets).
  $SUDO setsid dockerd >"$cache/dockerd.log" 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { echo "docker: dockerd did not come up; its log:" >&2; tail -n 30 "$cache/dockerd.log" >&2; exit 1; }
fi
