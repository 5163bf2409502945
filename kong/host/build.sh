#!/usr/bin/env bash
# Builds Kong's proxy-wasm host: nginx 1.25.3 + ngx_wasm_module at the commit Kong 3.9 bundles +
# wasmtime 26.0.0's C API, as Kong builds it (-DNGX_WASM_HOST_PROPERTY_NAMESPACE=kong, no
# --with-debug). The result is cached outside the clone, keyed by a hash of the build inputs:
#   ${CONSUMER_AUTH_CACHE:-$HOME/.cache/consumer-auth}/kong-host-<hash>/sbin/nginx
# A second run finds it and only prints its path. Usage: build.sh [stamp-file]
# (the stamp file receives the nginx binary's path; the Makefile exports it as KONG_NGINX_BIN).
#
# Sources: the tarballs from $KONG_HOST_SOURCES (default: ../shared/kong-host beside the clone)
# when that folder holds them, else downloaded from GitHub; either way their sha256 is checked.
# Installs cmake and libpcre2-dev (and the C toolchain if missing) with apt-get.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
stamp="${1:-}"

NGINX_TAG=release-1.25.3
NGINX_SHA256=cb2cfb15c97c4d0e3c2cf806d2a7398cfeecf62189f6dc7ec72d7c49856e62dc
NGINX_TARBALL=nginx-1.25.3-git.tar.gz
NGX_WASM_COMMIT=9136e463a6f1d80755ce66c88c3ddecd0eb5e25d
NGX_WASM_SHA256=6adba94011e8b3106ac1f010b9697174138231e5bb839951e78fbc007bf749d9
NGX_WASM_TARBALL=ngx_wasm_module-9136e463.tar.gz

sources="${KONG_HOST_SOURCES:-$repo/../shared/kong-host}"
cache="${CONSUMER_AUTH_CACHE:-$HOME/.cache/consumer-auth}"
jobs="${KONG_HOST_JOBS:-$(nproc 2>/dev/null || echo 2)}"

log() { echo "kong-host: $*" >&2; }
die() { echo "kong-host: error: $*" >&2; exit 1; }

# The cache key: everything that decides the binary (this script, the wrapper crate's pins, the
# source sums). The host's own toolchain (gcc, rustc) is not part of it.
key="$( { cat "$here/build.sh" "$here/wasmtime-capi/Cargo.toml" "$here/wasmtime-capi/Cargo.lock" \
  "$here/wasmtime-capi/src/lib.rs"; echo "$NGINX_SHA256 $NGX_WASM_SHA256"; } | sha256sum | cut -c1-12)"
out="$cache/kong-host-$key"
nginx_bin="$out/sbin/nginx"

write_stamp() {
  if [ -n "$stamp" ]; then
    mkdir -p "$(dirname "$stamp")"
    echo "$nginx_bin" > "$stamp"
  fi
}

if [ -f "$out/.complete" ] && [ -x "$nginx_bin" ]; then
  write_stamp
  log "cached: $nginx_bin"
  exit 0
fi

# --- Debian packages -------------------------------------------------------------------------------
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v cc >/dev/null || need+=(gcc)
command -v make >/dev/null || need+=(make)
command -v curl >/dev/null || need+=(curl)
for pkg in libpcre2-dev libssl-dev zlib1g-dev; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  log "installing ${need[*]}"
  if [ "$(id -u)" = 0 ]; then sudo=(); else sudo=(sudo); fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || die "cargo is needed to build wasmtime's C API (rustup.rs)"

# --- sources ---------------------------------------------------------------------------------------
mkdir -p "$cache/downloads"
fetch() { # <tarball name> <url> <sha256>; prints the path of a checked tarball
  local name="$1" url="$2" sum="$3" path
  if [ -f "$sources/$name" ]; then
    path="$sources/$name"
  else
    path="$cache/downloads/$name"
    if [ ! -f "$path" ]; then
      log "downloading $url"
      curl -fsSL --retry 3 -o "$path.part" "$url" || die "download failed: $url"
      mv "$path.part" "$path"
    fi
  fi
  echo "$sum  $path" | sha256sum -c --quiet - >/dev/null 2>&1 \
    || die "sha256 mismatch for $path (expected $sum)"
  echo "$path"
}
nginx_tgz="$(fetch "$NGINX_TARBALL" \
  "https://codeload.github.com/nginx/nginx/tar.gz/refs/tags/$NGINX_TAG" "$NGINX_SHA256")"
ngx_wasm_tgz="$(fetch "$NGX_WASM_TARBALL" \
  "https://codeload.github.com/Kong/ngx_wasm_module/tar.gz/$NGX_WASM_COMMIT" "$NGX_WASM_SHA256")"

# --- build in a scratch directory next to the result, then move it in place ------------------------
work="$cache/kong-host-$key.build"
rm -rf "$work"
mkdir -p "$work/src"
start=$(date +%s)

# wasmtime's C API: the pinned wrapper crate, with its own target dir (kept across input changes
# of the nginx part: it is keyed by the crate's own files).
capi_key="$(cat "$here/wasmtime-capi/Cargo.toml" "$here/wasmtime-capi/Cargo.lock" \
  "$here/wasmtime-capi/src/lib.rs" | sha256sum | cut -c1-12)"
capi="$cache/wasmtime-capi-$capi_key"
mkdir -p "$capi/src"
cp "$here/wasmtime-capi/Cargo.toml" "$here/wasmtime-capi/Cargo.lock" "$capi/"
cp "$here/wasmtime-capi/src/lib.rs" "$capi/src/"
log "building wasmtime 26.0.0's C API (cargo, ~4 minutes on 2 cores the first time)"
(cd "$capi" && CARGO_TARGET_DIR="$capi/target" cargo build --release --locked -j "$jobs" -q) \
  || die "wasmtime C API build failed"
lib="$capi/target/release/libwasmtime.a"
[ -f "$lib" ] || die "no $lib after the build"
# Headers as the wasmtime-c-api-impl build script copied them (the newest, if several).
inc_src="$(ls -dt "$capi"/target/release/build/wasmtime-c-api-impl-*/out/include 2>/dev/null | head -n1)"
[ -n "$inc_src" ] && [ -f "$inc_src/wasmtime.h" ] || die "wasmtime C API headers not found under $capi/target"
mkdir -p "$work/wasmtime/lib"
cp -r "$inc_src" "$work/wasmtime/include"
cp "$lib" "$work/wasmtime/lib/"
# Trap: the generated conf.h (CRLF line ends) leaves WASMTIME_FEATURE_WAT undefined although the
# wat feature is on; ngx_wasm_module then fails on an implicit wasmtime_wat2wasm.
conf="$work/wasmtime/include/wasmtime/conf.h"
[ -f "$conf" ] || die "no $conf"
sed -i 's|/\* #undef WASMTIME_FEATURE_WAT \*/|#define WASMTIME_FEATURE_WAT|' "$conf"
grep -q '^#define WASMTIME_FEATURE_WAT' "$conf" \
  || die "could not define WASMTIME_FEATURE_WAT in $conf"

# nginx + ngx_wasm_module
tar -xzf "$nginx_tgz" -C "$work/src"
tar -xzf "$ngx_wasm_tgz" -C "$work/src"
nginx_src="$(ls -d "$work"/src/nginx-*/ | head -n1)"
ngx_wasm_src="$(ls -d "$work"/src/ngx_wasm_module*/ | head -n1)"
[ -x "$nginx_src/auto/configure" ] || die "no auto/configure in $nginx_src"
log "configuring and building nginx 1.25.3 + ngx_wasm_module ${NGX_WASM_COMMIT:0:8}"
(
  cd "$nginx_src"
  NGX_WASM_RUNTIME=wasmtime \
  NGX_WASM_RUNTIME_INC="$work/wasmtime/include" \
  NGX_WASM_RUNTIME_LIB="$work/wasmtime/lib" \
  NGX_WASM_RUNTIME_LD_OPT="$work/wasmtime/lib/libwasmtime.a" \
    auto/configure --prefix="$out" --add-module="$ngx_wasm_src" --with-http_ssl_module \
      --with-cc-opt='-O2 -DNGX_WASM_HOST_PROPERTY_NAMESPACE=kong' >"$work/configure.log" 2>&1 \
    || { tail -n 40 "$work/configure.log" >&2; exit 1; }
  make -j "$jobs" >"$work/make.log" 2>&1 || { tail -n 40 "$work/make.log" >&2; exit 1; }
) || die "nginx build failed (logs in $work)"

rm -rf "$out"
mkdir -p "$out/sbin" "$out/logs" "$out/conf"
cp "$nginx_src/objs/nginx" "$nginx_bin"
cp "$nginx_src"/conf/mime.types "$out/conf/" 2>/dev/null || true
"$nginx_bin" -V >"$out/nginx-V.txt" 2>&1 || die "$nginx_bin does not run"
grep -q ngx_wasm_module "$out/nginx-V.txt" || die "$nginx_bin has no ngx_wasm_module"
touch "$out/.complete"
rm -rf "$work"
write_stamp
log "built in $(( $(date +%s) - start )) s: $nginx_bin"
