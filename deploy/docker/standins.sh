#!/usr/bin/env bash
# Build the compose demo's stand-in images, for machines that cannot pull the official ones.
#
#   standins.sh ENVOY_BIN      prints ENVOY_IMAGE=... and ECHO_IMAGE=... (for docker compose)
#
# Never tagged with an official name: consumer-auth-local/{debian,envoy,http-echo}.
# - consumer-auth-local/debian:bookworm: Debian's packages (debootstrap, minbase + python3) and
#   `docker import`. The root filesystem tarball is cached in $CONSUMER_AUTH_CACHE/docker (the
#   slow part, about a minute); the image is re-imported from it when the daemon lacks it.
# - consumer-auth-local/envoy:<version>: ENVOY_BIN (the Envoy the tests use) on that base.
# - consumer-auth-local/http-echo:1: echo.py on that base.
# Each image carries a label with the hash of its inputs and is rebuilt only when they change.
set -euo pipefail
envoy_bin="${1:?usage: standins.sh ENVOY_BIN}"
here="$(cd "$(dirname "$0")" && pwd)"
cache="${CONSUMER_AUTH_CACHE:-$HOME/.cache/consumer-auth}/docker"
mkdir -p "$cache"

suite=bookworm
include=python3
base_key="$(printf '%s\n' "$suite" minbase "$include" | sha256sum | cut -c1-16)"
base_image="consumer-auth-local/debian:$suite"
base_tar="$cache/debian-$suite-$base_key.tar"

label() { docker image inspect -f "{{ index .Config.Labels \"consumer-auth.inputs\" }}" "$1" 2>/dev/null || true; }

if [ "$(label "$base_image")" != "$base_key" ]; then
  if [ ! -s "$base_tar" ]; then
    echo "standins: debootstrap $suite (minbase + $include) into the cache ..." >&2
    root="$(mktemp -d "$cache/rootfs.XXXXXX")"
    trap 'umount "$root/proc" "$root/sys" 2>/dev/null || true; rm -rf "$root"' EXIT
    debootstrap --variant=minbase --include="$include" "$suite" "$root" >"$cache/debootstrap.log" 2>&1 || {
      echo "standins: debootstrap failed; its log:" >&2; tail -n 30 "$cache/debootstrap.log" >&2; exit 1; }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar --numeric-owner --exclude='./proc/*' --exclude='./sys/*' --exclude='./dev/*' \
      -C "$root" -cf "$base_tar.part" .
    mv "$base_tar.part" "$base_tar"
    rm -rf "$root"; trap - EXIT
  fi
  echo "standins: docker import $base_tar as $base_image" >&2
  docker import --change "LABEL consumer-auth.inputs=$base_key" "$base_tar" "$base_image" >/dev/null
fi

# build IMAGE DOCKERFILE FILE...: the files are the build context; rebuilt when they or the
# base change.
build() {
  local image="$1" dockerfile="$2"; shift 2
  local key
  key="$( { echo "$base_key"; sha256sum "$dockerfile" "$@" | cut -d' ' -f1; } | sha256sum | cut -c1-16)"
  if [ "$(label "$image")" = "$key" ]; then return; fi
  echo "standins: building $image" >&2
  local ctx old
  old="$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)"
  ctx="$(mktemp -d "$cache/context.XXXXXX")"
  for f in "$@"; do cp --reflink=auto "$f" "$ctx/"; done
  docker build -q --build-arg "BASE=$base_image" --label "consumer-auth.inputs=$key" \
    -t "$image" -f "$dockerfile" "$ctx" >"$ctx.log" 2>&1 || {
    echo "standins: docker build of $image failed:" >&2; cat "$ctx.log" >&2; rm -rf "$ctx" "$ctx.log"; exit 1; }
  rm -rf "$ctx" "$ctx.log"
  # The previous build of this tag, now untagged (kept if a container still uses it).
  if [ -n "$old" ] && [ "$old" != "$(docker image inspect -f '{{.Id}}' "$image")" ]; then
    docker rmi "$old" >/dev/null 2>&1 || true
  fi
}

version="$("$envoy_bin" --version | sed -n 's/.*\/\([0-9][0-9.]*\)\/.*/\1/p' | head -n1)"
envoy_image="consumer-auth-local/envoy:${version:-unknown}"
echo_image="consumer-auth-local/http-echo:1"
[ "$(basename "$envoy_bin")" = envoy ] || { echo "standins: $envoy_bin: expected a file named envoy" >&2; exit 1; }
build "$envoy_image" "$here/envoy.Dockerfile" "$envoy_bin"
build "$echo_image" "$here/echo.Dockerfile" "$here/echo.py"
echo "ENVOY_IMAGE=$envoy_image"
echo "ECHO_IMAGE=$echo_image"
