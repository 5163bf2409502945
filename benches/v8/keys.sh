#!/usr/bin/env bash
# Key material for `make bench-v8` (throwaway keys, made once into $1): public keys in PEM and
# signatures of one JWS signing input, for RS256 (RSA-2048/3072/4096), ES256, ES384 and EdDSA.
set -euo pipefail
dir="$1"
[ -f "$dir/done" ] && exit 0
mkdir -p "$dir"
cd "$dir"
printf 'eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJiZW5jaCIsImV4cCI6NDEwMjQ0NDgwMH0' > input
for bits in 2048 3072 4096; do
  openssl genrsa -out rsa$bits.key $bits 2>/dev/null
  openssl rsa -in rsa$bits.key -pubout -out rsa$bits.pub 2>/dev/null
  openssl dgst -sha256 -sign rsa$bits.key -out rsa$bits.sig input
done
for curve in p256:prime256v1:sha256 p384:secp384r1:sha384; do
  IFS=: read -r name group hash <<< "$curve"
  openssl ecparam -name "$group" -genkey -noout -out $name.key
  openssl ec -in $name.key -pubout -out $name.pub 2>/dev/null
  openssl dgst -$hash -sign $name.key -out $name.sig input
done
openssl genpkey -algorithm ed25519 -out ed25519.key
openssl pkey -in ed25519.key -pubout -out ed25519.pub
openssl pkeyutl -sign -inkey ed25519.key -rawin -in input -out ed25519.sig
touch done
