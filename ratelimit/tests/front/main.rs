//! The front against a real Redis (`make test` starts Debian's `redis-server` on a free port and
//! sets `CONSUMER_AUTH_REDIS_URL`; `make redis-server` alone does that for a manual run). One test
//! binary; modules by area.

#[cfg(test)]
mod support;

#[cfg(test)]
mod counting;
