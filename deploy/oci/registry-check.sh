#!/usr/bin/env bash
# `make oci`, second half: push IMAGE to a throwaway registry on a loopback port (Debian's
# docker-registry, installed when missing) and read it back as Istio's and Envoy Gateway's
# fetchers do: the manifest by its digest (exactly one layer), that layer's blob (a gzip'd tar)
# holding one file, plugin.wasm, byte for byte WASM. Prints the manifest digest, the value a
# WasmPlugin's `sha256` / an EnvoyExtensionPolicy's `code.image.sha256` pins once the image is
# pushed (a push to your registry prints its own digest: pin what your registry reports).
#
#   registry-check.sh IMAGE WASM
set -euo pipefail
image="${1:?usage: registry-check.sh IMAGE WASM}"
wasm="${2:?usage: registry-check.sh IMAGE WASM}"
if ! command -v docker-registry >/dev/null; then
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  echo "oci: installing Debian's docker-registry"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq docker-registry >/dev/null
fi

dir="$(mktemp -d)"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
registry="127.0.0.1:$port"
ref="$registry/consumer-auth:check"
cat >"$dir/config.yml" <<YAML
version: 0.1
log: { level: warn }
storage: { filesystem: { rootdirectory: $dir/data } }
http: { addr: "$registry" }
YAML
docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  docker rmi "$ref" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "oci: $*" >&2; echo "oci: the registry's log:" >&2; cat "$dir/registry.log" >&2; exit 1; }
for _ in $(seq 1 50); do curl -sf "http://$registry/v2/" >/dev/null && break; sleep 0.2; done
curl -sf "http://$registry/v2/" >/dev/null || fail "docker-registry did not answer on $registry"

# Docker treats registries on 127.0.0.0/8 as insecure (plain http) by default.
docker tag "$image" "$ref"
pushed="$(docker push "$ref")" || fail "docker push $ref failed: $pushed"
digest="$(sed -n 's/.*digest: \(sha256:[0-9a-f]\{64\}\).*/\1/p' <<<"$pushed")"
[ -n "$digest" ] || fail "no digest in docker push's output: $pushed"

accept='application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json'
curl -sf -H "Accept: $accept" -o "$dir/manifest.json" "http://$registry/v2/consumer-auth/manifests/$digest" ||
  fail "the registry has no manifest $digest"
[ "sha256:$(sha256sum "$dir/manifest.json" | cut -d' ' -f1)" = "$digest" ] || fail "the manifest's bytes do not hash to $digest"
layer="$(python3 - "$dir/manifest.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
layers = m.get("layers", [])
if m.get("schemaVersion") != 2 or len(layers) != 1 or "tar" not in layers[0]["mediaType"]:
    sys.exit(f"expected a single-manifest image with one tar layer: {m}")
print(layers[0]["digest"])
PY
)" || fail "unexpected manifest"
curl -sf -o "$dir/layer" "http://$registry/v2/consumer-auth/blobs/$layer" || fail "the registry has no blob $layer"
[ "sha256:$(sha256sum "$dir/layer" | cut -d' ' -f1)" = "$layer" ] || fail "the layer's bytes do not hash to $layer"
mkdir "$dir/layer.d"
tar -xzf "$dir/layer" -C "$dir/layer.d" || fail "the layer is not a gzip'd tar"
[ "$(cd "$dir/layer.d" && find . -mindepth 1 | sort)" = "./plugin.wasm" ] ||
  fail "the layer holds $(cd "$dir/layer.d" && find . -mindepth 1 | tr '\n' ' '), not only plugin.wasm"
cmp -s "$dir/layer.d/plugin.wasm" "$wasm" || fail "plugin.wasm in the pushed layer is not $wasm"
echo "oci: $image pushed to a registry and read back: manifest digest $digest (one layer $layer, /plugin.wasm = $wasm)"
