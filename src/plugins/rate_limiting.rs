//! rate-limiting (BEHAVIOUR.md §B10): Kong's `local` policy with fixed windows aligned to the start
//! of each period (UTC), counters shared by every worker of the proxy through shared data and
//! updated with compare-and-swap, so that concurrent workers lose no increment and exactly
//! `limit` requests pass in a window.
//!
//! Memory is bounded: one shared-data key per (filter instance, plugin entry, period, limited
//! identity), holding `window_start:count`. A new window overwrites the same key, so windows
//! never accumulate; the number of keys is bounded by the number of identities (consumers or
//! credentials of the document; client addresses for `limit_by: ip` or the IP fallback).

use serde::Deserialize;
use serde_json::Value;

pub mod redis;

use super::context::Ctx;
use super::{Halt, Plugin};
use crate::error::{parse_section, ConfigError, ErrorKind};
use crate::proxy::{LogLevel, SharedError};
use crate::response::{Reason, Rejection};
use crate::time::{civil_from_days, days_from_civil};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimiting {
    second: Option<f64>,
    minute: Option<f64>,
    hour: Option<f64>,
    day: Option<f64>,
    month: Option<f64>,
    year: Option<f64>,
    #[serde(default = "default_limit_by")]
    limit_by: String,
    #[serde(default)]
    hide_client_headers: bool,
    error_code: Option<Value>,
    #[serde(default = "default_error_message")]
    error_message: String,
    #[serde(default = "default_policy")]
    policy: String,
    /// `policy: redis` (see `redis.rs`).
    redis: Option<Value>,
    #[serde(default = "default_true")]
    fault_tolerant: bool,
    #[serde(default = "default_sync_rate")]
    sync_rate: f64,
    /// Kong's ids, part of the Redis key (`from-deck` fills them).
    route_id: Option<String>,
    service_id: Option<String>,
}

fn default_true() -> bool {
    true
}

fn default_sync_rate() -> f64 {
    -1.0
}

fn default_limit_by() -> String {
    "consumer".into()
}

fn default_error_message() -> String {
    "API rate limit exceeded".into()
}

fn default_policy() -> String {
    "local".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Second,
    Minute,
    Hour,
    Day,
    Month,
    Year,
}

impl Period {
    const ALL: [Period; 6] = [Period::Second, Period::Minute, Period::Hour, Period::Day, Period::Month, Period::Year];

    pub fn name(self) -> &'static str {
        match self {
            Period::Second => "second",
            Period::Minute => "minute",
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Month => "month",
            Period::Year => "year",
        }
    }

    /// `(window start, window end)` in unix seconds for the window holding `now` (UTC).
    pub fn window(self, now: u64) -> (u64, u64) {
        let fixed = |len: u64| {
            let start = now - now % len;
            (start, start + len)
        };
        match self {
            Period::Second => fixed(1),
            Period::Minute => fixed(60),
            Period::Hour => fixed(3600),
            Period::Day => fixed(86_400),
            Period::Month => {
                let (y, m, _) = civil_from_days(now / 86_400);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                (days_from_civil(y, m, 1) * 86_400, days_from_civil(ny, nm, 1) * 86_400)
            }
            Period::Year => {
                let (y, _, _) = civil_from_days(now / 86_400);
                (days_from_civil(y, 1, 1) * 86_400, days_from_civil(y + 1, 1, 1) * 86_400)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LimitBy {
    Consumer,
    Credential,
    Ip,
}

pub struct RateLimiting {
    /// Shared-data key prefix: this filter instance and plugin entry.
    scope: String,
    limits: Vec<(Period, u64)>,
    limit_by: LimitBy,
    hide_client_headers: bool,
    error_code: u16,
    error_message: String,
    /// `policy: redis`; `None`: Kong's `local`.
    redis: Option<redis::RedisPolicy>,
}

/// How many times a compare-and-swap is retried before the request is let through (and logged).
const CAS_ATTEMPTS: usize = 64;

/// Header names by period: `X-RateLimit-Limit-Minute`, ...
fn header_suffix(p: Period) -> &'static str {
    match p {
        Period::Second => "Second",
        Period::Minute => "Minute",
        Period::Hour => "Hour",
        Period::Day => "Day",
        Period::Month => "Month",
        Period::Year => "Year",
    }
}

impl RateLimiting {
    /// `scope` identifies the filter instance and the plugin entry (counters are kept per entry).
    pub fn build(config: Value, path: &str, scope: String) -> Result<RateLimiting, ConfigError> {
        let raw: RawRateLimiting = parse_section(config, path)?;
        let mut limits = Vec::new();
        for (period, value) in
            Period::ALL.into_iter().zip([raw.second, raw.minute, raw.hour, raw.day, raw.month, raw.year])
        {
            if let Some(v) = value {
                if v.is_nan() || v <= 0.0 || v.fract() != 0.0 || v > 1e15 {
                    return Err(ConfigError::new(
                        format!("{path}.{}", period.name()),
                        ErrorKind::Rule("value must be a whole number greater than 0"),
                    ));
                }
                limits.push((period, v as u64));
            }
        }
        if limits.is_empty() {
            return Err(ConfigError::new(
                path,
                ErrorKind::AtLeastOneOf(
                    "'config.second', 'config.minute', 'config.hour', 'config.day', 'config.month', 'config.year'",
                ),
            ));
        }
        // Kong: a longer period may not have a smaller limit than a shorter one; the first
        // offending pair in Kong's order (each period against every longer one) is reported.
        for (i, &(short, a)) in limits.iter().enumerate() {
            if let Some(&(long, b)) = limits.iter().skip(i + 1).find(|(_, b)| *b < a) {
                return Err(ConfigError::new(
                    format!("{path}.{}", long.name()),
                    ErrorKind::Ordering { shorter: (short.name(), a), longer: (long.name(), b) },
                ));
            }
        }
        let limit_by = match raw.limit_by.as_str() {
            "consumer" => LimitBy::Consumer,
            "credential" => LimitBy::Credential,
            "ip" => LimitBy::Ip,
            _ => {
                return Err(ConfigError::new(
                    format!("{path}.limit_by"),
                    ErrorKind::Rule("expected one of: consumer, credential, ip"),
                ))
            }
        };
        let route_id = redis::kong_id(raw.route_id, &format!("{path}.route_id"))?;
        let service_id = redis::kong_id(raw.service_id, &format!("{path}.service_id"))?;
        let redis = match raw.policy.as_str() {
            "local" => {
                if raw.redis.is_some() {
                    return Err(ConfigError::new(format!("{path}.redis"), ErrorKind::Rule("only with policy redis")));
                }
                if raw.sync_rate != -1.0 {
                    return Err(ConfigError::new(
                        format!("{path}.sync_rate"),
                        ErrorKind::Rule("only with policy redis"),
                    ));
                }
                if !raw.fault_tolerant {
                    // local counters fail only with the host's shared data: let through and logged
                    return Err(ConfigError::new(
                        format!("{path}.fault_tolerant"),
                        ErrorKind::Rule("false only with policy redis"),
                    ));
                }
                None
            }
            "redis" => {
                let at = format!("{path}.redis");
                let Some(front) = raw.redis else {
                    return Err(ConfigError::new(at, ErrorKind::RequiredFieldMissing));
                };
                let front = redis::Front::build(parse_section(front, &at)?, &at)?;
                // Kong: -1 (synchronous) or at least 0.02 s.
                let sync_rate_ms = if raw.sync_rate == -1.0 {
                    None
                } else if (0.02..=3600.0).contains(&raw.sync_rate) {
                    Some((raw.sync_rate * 1000.0).round() as u32)
                } else {
                    return Err(ConfigError::new(
                        format!("{path}.sync_rate"),
                        ErrorKind::Rule("must be -1 or between 0.02 and 3600 (seconds)"),
                    ));
                };
                Some(redis::RedisPolicy::new(front, route_id, service_id, raw.fault_tolerant, sync_rate_ms))
            }
            _ => {
                return Err(ConfigError::new(
                    format!("{path}.policy"),
                    ErrorKind::Rule("expected one of: local, redis"),
                ))
            }
        };
        let error_code = match &raw.error_code {
            None => 429,
            Some(v) => v
                .as_f64()
                .filter(|c| c.fract() == 0.0 && (100.0..=599.0).contains(c))
                .map(|c| c as u16)
                .ok_or_else(|| ConfigError::new(format!("{path}.error_code"), ErrorKind::Between(100, 599)))?,
        };
        Ok(RateLimiting {
            scope,
            limits,
            limit_by,
            hide_client_headers: raw.hide_client_headers,
            error_code,
            error_message: raw.error_message,
            redis,
        })
    }

    /// Kong's `get_identifier`: consumer (or credential) id, else the client address. A
    /// credential is its plugin and identifier (Kong: the credential's id).
    fn identifier(&self, ctx: &mut Ctx<'_, '_>) -> String {
        let identity = &ctx.identity;
        let credential = || {
            let plugin = identity.credential_plugin.as_deref().unwrap_or_default();
            identity.credential.as_ref().map(|c| format!("k:{plugin}:{c}"))
        };
        let identity = match self.limit_by {
            LimitBy::Consumer => identity.consumer.as_ref().map(|c| format!("c:{}", c.id)).or_else(credential),
            LimitBy::Credential => credential(),
            LimitBy::Ip => None,
        };
        identity.unwrap_or_else(|| format!("ip:{}", ctx.client_ip().unwrap_or_else(|| "unknown".into())))
    }

    fn key(&self, period: Period, identifier: &str) -> String {
        format!("{}rl:{}:{}:{identifier}", crate::SHARED_DATA_PREFIX, self.scope, period.name())
    }
}

/// One window's state as stored: `window_start:count`.
fn decode(value: &[u8], window_start: u64) -> u64 {
    let text = std::str::from_utf8(value).unwrap_or("");
    match text.split_once(':') {
        Some((start, count)) if start.parse() == Ok(window_start) => count.parse().unwrap_or(0),
        _ => 0, // another (older) window, or nothing yet
    }
}

/// One period's usage after this request.
struct Usage {
    period: Period,
    limit: u64,
    /// Requests counted in the window, this one included when it passed.
    count: u64,
    reset: u64,
}

impl Plugin for RateLimiting {
    fn name(&self) -> &'static str {
        "rate-limiting"
    }

    fn run(&self, ctx: &mut Ctx<'_, '_>) -> Result<(), Halt> {
        match &self.redis {
            None => self.run_local(ctx),
            Some(redis) => self.run_redis(ctx, redis),
        }
    }

    fn counters(&self) -> Option<(&redis::RedisPolicy, &str)> {
        self.redis.as_ref().filter(|r| r.tick_ms().is_some()).map(|r| (r, self.scope.as_str()))
    }
}

impl RateLimiting {
    /// Kong's `local` policy: counters in this proxy's shared data.
    fn run_local(&self, ctx: &mut Ctx<'_, '_>) -> Result<(), Halt> {
        let now = ctx.now();
        let identifier = self.identifier(ctx);
        let mut usages = Vec::with_capacity(self.limits.len());
        let mut stop = None;
        // Check every window first (as Kong does): a request over any limit counts nowhere.
        for &(period, limit) in &self.limits {
            let (start, end) = period.window(now);
            let key = self.key(period, &identifier);
            let count = match ctx.shared_get(&key) {
                Ok(Some((value, _))) => decode(&value, start),
                Ok(None) => 0,
                Err(_) => 0,
            };
            if count >= limit && stop.is_none() {
                stop = Some(usages.len());
            }
            usages.push(Usage { period, limit, count, reset: end.saturating_sub(now).max(1) });
        }
        if stop.is_none() {
            // Count this request in every window, each with compare-and-swap; a window that
            // filled up meanwhile refuses it.
            for (i, u) in usages.iter_mut().enumerate() {
                match self.increment(ctx, u, now, &identifier) {
                    Increment::Counted => {}
                    Increment::Full => {
                        stop = Some(i);
                        break;
                    }
                }
            }
        }
        self.finish(ctx, &usages, stop)
    }

    /// Kong's `redis` policy: every request counted in Redis (refused ones too), blocked when a
    /// period's usage before it reached the limit.
    fn run_redis(&self, ctx: &mut Ctx<'_, '_>, redis: &redis::RedisPolicy) -> Result<(), Halt> {
        let now = ctx.now();
        let identifier = self.redis_identifier(ctx);
        let windows = self.limits.iter().map(|&(period, _)| (period, period.window(now).0)).collect();
        let reply = ctx.counter_reply.clone();
        let (windows, counts) = redis.counts(ctx.host(), &self.scope, &identifier, windows, reply.as_deref());
        let before = match counts {
            redis::Counts::Known(before) => before,
            redis::Counts::Ask(call) => return Err(Halt::NeedCounters(call)),
            // Kong's fault_tolerant: through without rate-limit headers, or its 500.
            redis::Counts::Failed if redis.fault_tolerant => return Ok(()),
            redis::Counts::Failed => {
                return Err(Halt::from(Rejection::kong(500, "An unexpected error occurred", Reason::InternalError)))
            }
        };
        let mut usages = Vec::with_capacity(windows.len());
        let mut stop = None;
        for ((&(period, limit), &(_, start)), &usage) in self.limits.iter().zip(&windows).zip(&before) {
            if usage >= limit && stop.is_none() {
                stop = Some(usages.len());
            }
            let (_, end) = period.window(start);
            usages.push(Usage { period, limit, count: usage.saturating_add(1), reset: end.saturating_sub(now).max(1) });
        }
        self.finish(ctx, &usages, stop)
    }

    /// Kong's `get_identifier` as Redis keys carry it: the consumer's id, the credential, or
    /// the client address (so a Kong node counts the same key for the same consumer).
    fn redis_identifier(&self, ctx: &mut Ctx<'_, '_>) -> String {
        let identity = &ctx.identity;
        let identity = match self.limit_by {
            LimitBy::Consumer => {
                identity.consumer.as_ref().map(|c| c.id.clone()).or_else(|| identity.credential.clone())
            }
            LimitBy::Credential => identity.credential.clone(),
            LimitBy::Ip => None,
        };
        identity.unwrap_or_else(|| ctx.client_ip().unwrap_or_else(|| "unknown".into()))
    }

    /// The headers and the verdict, once every period's usage is known.
    fn finish(&self, ctx: &mut Ctx<'_, '_>, usages: &[Usage], stop: Option<usize>) -> Result<(), Halt> {
        let headers = if self.hide_client_headers { Vec::new() } else { self.headers(usages, stop) };
        match stop {
            None => {
                for (name, value) in headers {
                    ctx.edits.add_response_header(name, value);
                }
                Ok(())
            }
            Some(_) => {
                let mut rejection = Rejection::kong(self.error_code, self.error_message.clone(), Reason::RateLimited);
                rejection.headers = headers;
                Err(Halt::from(rejection))
            }
        }
    }
}

enum Increment {
    Counted,
    Full,
}

impl RateLimiting {
    fn increment(&self, ctx: &mut Ctx<'_, '_>, usage: &mut Usage, now: u64, identifier: &str) -> Increment {
        let (start, _) = usage.period.window(now);
        let key = self.key(usage.period, identifier);
        for _ in 0..CAS_ATTEMPTS {
            let (count, cas) = match ctx.shared_get(&key) {
                Ok(Some((value, cas))) => (decode(&value, start), cas),
                Ok(None) => (0, 0),
                Err(_) => break,
            };
            if count >= usage.limit {
                usage.count = count;
                return Increment::Full;
            }
            let value = format!("{start}:{}", count + 1);
            match ctx.shared_set(&key, value.as_bytes(), cas) {
                Ok(()) => {
                    usage.count = count + 1;
                    return Increment::Counted;
                }
                Err(SharedError::CasMismatch) => continue,
                Err(SharedError::Unavailable) => break,
            }
        }
        // Shared data is unavailable or hopelessly contended: let the request through rather
        // than refuse everybody (Kong's fault_tolerant default), and say so.
        ctx.log(LogLevel::Warn, "consumer-auth: rate-limiting counter could not be updated; request allowed");
        usage.count = usage.count.saturating_add(1);
        Increment::Counted
    }

    /// Kong's response headers. `stop`: index of the window that refused the request.
    fn headers(&self, usages: &[Usage], stop: Option<usize>) -> Vec<(String, String)> {
        let mut headers = Vec::with_capacity(usages.len() * 2 + 4);
        let mut best: Option<(u64, u64, u64)> = None; // (remaining, limit, reset)
        for (i, u) in usages.iter().enumerate() {
            let remaining = match stop {
                Some(s) if s == i => 0,
                _ => u.limit.saturating_sub(u.count),
            };
            let suffix = header_suffix(u.period);
            headers.push((format!("X-RateLimit-Limit-{suffix}"), u.limit.to_string()));
            headers.push((format!("X-RateLimit-Remaining-{suffix}"), remaining.to_string()));
            let better = match best {
                None => true,
                Some((r, l, _)) => remaining < r || (remaining == r && u.limit > l),
            };
            if better {
                best = Some((remaining, u.limit, u.reset));
            }
        }
        if let Some((remaining, limit, reset)) = best {
            headers.push(("RateLimit-Limit".into(), limit.to_string()));
            headers.push(("RateLimit-Remaining".into(), remaining.to_string()));
            headers.push(("RateLimit-Reset".into(), reset.to_string()));
            if stop.is_some() {
                headers.push(("Retry-After".into(), reset.to_string()));
            }
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_aligned_in_utc() {
        // 2026-03-15T10:20:30Z
        let now = 1_773_570_030;
        assert_eq!(Period::Second.window(now), (now, now + 1));
        assert_eq!(Period::Minute.window(now), (1_773_570_000, 1_773_570_060));
        assert_eq!(Period::Hour.window(now), (1_773_568_800, 1_773_572_400));
        assert_eq!(Period::Day.window(now), (1_773_532_800, 1_773_619_200));
        // 2026-03-01 .. 2026-04-01
        assert_eq!(Period::Month.window(now), (1_772_323_200, 1_775_001_600));
        // 2026-01-01 .. 2027-01-01
        assert_eq!(Period::Year.window(now), (1_767_225_600, 1_798_761_600));
        // December rolls over into the next year
        let dec = 1_796_083_200 + 5; // 2026-12-01T00:00:05Z
        assert_eq!(Period::Month.window(dec), (1_796_083_200, 1_798_761_600));
    }

    #[test]
    fn stored_counts_belong_to_their_window() {
        assert_eq!(decode(b"60:7", 60), 7);
        assert_eq!(decode(b"0:7", 60), 0);
        assert_eq!(decode(b"garbage", 60), 0);
        assert_eq!(decode(b"", 60), 0);
    }
}
