//! `make bench-jwt`: the jwt plugin through the real Envoy (V8), side by side with Envoy's native
//! `jwt_authn`, in one run on one Envoy: no filter; consumer-auth HS256 / RS256 / ES256 / EdDSA
//! with a repeated token and with a fresh token per request; `jwt_authn` with the same keys
//! (`local_jwks`) and the same tokens, fresh, without its cache, and repeated with its
//! `jwt_cache_config`.
//!
//! - Envoy `--concurrency 1` pinned to CPU 0, wrk `-t1` pinned to CPU 1; `direct_response`
//!   routes, one per case; a warm-up run per case, then `BENCH_RUNS` interleaved rounds.
//! - "Fresh": a wrk Lua script sends the next token of a pool of pre-minted distinct tokens per
//!   request (claims differ by `jti`). A consumer-auth instance never sees a token twice: the
//!   pool is larger than the requests it is sent over the whole run (checked; the report says so
//!   if it ever wrapped), and the filter's own cache counters (`consumer_auth_jwt_cache_total`)
//!   are read from Envoy's admin around every run and reported. `jwt_authn` keeps no state per
//!   token without `jwt_cache_config`, so its fresh cases may reuse the pool.
//! - The figure the targets are stated in: Envoy's CPU per request over the no-filter route's
//!   (+CPU), and ratios of +CPU (consumer-auth / jwt_authn) and of req/s.
//!
//! Tokens are minted once (RSA signing is slow) into `${CONSUMER_AUTH_CACHE:-~/.cache/consumer-auth}/bench-jwt/`
//! from keys derived from a fixed seed, so later runs start at once.
//!
//! Environment: `BENCH_SECONDS` (per run, default 5), `BENCH_FRESH_SECONDS` (per run of a fresh
//! case, default 2), `BENCH_RUNS` (default 3), `BENCH_WARMUP` (seconds, default 1),
//! `BENCH_CONNECTIONS` (default 10), `BENCH_JWT_TOKENS` (pool per algorithm, default 60000),
//! `BENCH_BASELINE_WASM` (another build of the filter, e.g. the previous release, measured in the
//! same run with repeated tokens), `BENCH_RESULTS_DIR` (default `bench-results/`). Needs `wrk`,
//! `ENVOY_BIN` and `CONSUMER_AUTH_WASM`.

// a benchmark driver, not the filter: a failed setup or an answer it cannot read ends the run with
// its message.
#![allow(clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use consumer_auth_e2e::bootstrap::{wasm_filter_entry, FILTER_CONFIG};
use consumer_auth_e2e::clients::{hmac_sha256, jwt_signing_input, jwt_with_signature};
use consumer_auth_e2e::envoy::Envoy;
use consumer_auth_e2e::http::Request;
use consumer_auth_e2e::measure::{
    bench_bootstrap, can_pin, env_or, latency, loadavg, machine, median, save_report, timestamp, Load, Run, PROXY_CPU,
};
use rand::SeedableRng;
use serde_json::{json, Value};

const JWT_AUTHN: &str = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication";
const JWT_AUTHN_ROUTE: &str = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig";
/// Far in the future, so that minted tokens stay valid in the cache of minted tokens.
const EXP: u64 = 4_102_444_800;
const HS256_SECRET: &str = "bench-hs256-secret-0123456789abcdef";
/// The jwt plugin's `token_cache_entries` default (the bench's plugins leave it unset).
const DEFAULT_TOKEN_CACHE_ENTRIES: usize = 10_000;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Alg {
    Hs256,
    Rs256,
    Es256,
    EdDsa,
}

impl Alg {
    const ALL: [Alg; 4] = [Alg::Hs256, Alg::Rs256, Alg::Es256, Alg::EdDsa];

    fn name(self) -> &'static str {
        match self {
            Alg::Hs256 => "HS256",
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Alg::Hs256 => "hs256",
            Alg::Rs256 => "rs256",
            Alg::Es256 => "es256",
            Alg::EdDsa => "eddsa",
        }
    }

    /// The `iss` of its tokens: consumer-auth's jwt_secret key.
    fn issuer(self) -> String {
        format!("bench-{}", self.slug())
    }
}

/// The signing keys, derived from a fixed seed (the same keys every run).
struct Keys {
    rsa: rsa::RsaPrivateKey,
    p256: p256::ecdsa::SigningKey,
    ed25519: ed25519_dalek::SigningKey,
}

impl Keys {
    fn derive() -> Keys {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x6a77_7462_656e_6368);
        let rsa = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("an RSA-2048 key");
        let p256 = p256::ecdsa::SigningKey::random(&mut rng);
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rng, &mut seed);
        Keys { rsa, p256, ed25519: ed25519_dalek::SigningKey::from_bytes(&seed) }
    }

    fn public_pem(&self, alg: Alg) -> Option<String> {
        // one trait for the three crates (they share pkcs8 0.10)
        use rsa::pkcs8::EncodePublicKey as _;
        let lf = rsa::pkcs8::LineEnding::LF;
        Some(match alg {
            Alg::Hs256 => return None,
            Alg::Rs256 => self.rsa.to_public_key().to_public_key_pem(lf).expect("RSA PEM"),
            Alg::Es256 => self.p256.verifying_key().to_public_key_pem(lf).expect("P-256 PEM"),
            Alg::EdDsa => self.ed25519.verifying_key().to_public_key_pem(lf).expect("Ed25519 PEM"),
        })
    }

    /// The key as a JWK for `jwt_authn`'s `local_jwks`.
    fn jwk(&self, alg: Alg) -> Value {
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        match alg {
            Alg::Hs256 => json!({ "kty": "oct", "alg": "HS256", "k": b64(HS256_SECRET.as_bytes()) }),
            Alg::Rs256 => {
                use rsa::traits::PublicKeyParts;
                let public = self.rsa.to_public_key();
                json!({ "kty": "RSA", "alg": "RS256", "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be()) })
            }
            Alg::Es256 => {
                let point = self.p256.verifying_key().to_encoded_point(false);
                json!({ "kty": "EC", "alg": "ES256", "crv": "P-256",
                        "x": b64(point.x().expect("x")), "y": b64(point.y().expect("y")) })
            }
            Alg::EdDsa => {
                json!({ "kty": "OKP", "alg": "EdDSA", "crv": "Ed25519", "x": b64(self.ed25519.verifying_key().as_bytes()) })
            }
        }
    }

    fn token(&self, alg: Alg, jti: usize) -> String {
        let claims = json!({ "iss": alg.issuer(), "sub": "bench", "exp": EXP, "jti": jti.to_string() });
        let input = jwt_signing_input(alg.name(), &claims);
        let signature: Vec<u8> = match alg {
            Alg::Hs256 => hmac_sha256(HS256_SECRET, input.as_bytes()),
            Alg::Rs256 => {
                use rsa::signature::{SignatureEncoding, Signer};
                rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(self.rsa.clone()).sign(input.as_bytes()).to_vec()
            }
            Alg::Es256 => {
                use p256::ecdsa::signature::Signer;
                let signature: p256::ecdsa::Signature = self.p256.sign(input.as_bytes());
                signature.to_bytes().to_vec()
            }
            Alg::EdDsa => {
                use ed25519_dalek::Signer;
                self.ed25519.sign(input.as_bytes()).to_bytes().to_vec()
            }
        };
        jwt_with_signature(&input, &signature)
    }

    /// `count` distinct tokens, one per line in a file, minted on two threads once and kept.
    fn pool(&self, alg: Alg, count: usize) -> PathBuf {
        let dir = std::env::var_os("CONSUMER_AUTH_CACHE")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/tmp".into())).join(".cache/consumer-auth")
            })
            .join("bench-jwt");
        // The key's fingerprint and the claims' shape are in the name: other keys or claims,
        // other files.
        let fingerprint = &hex_prefix(&format!("{}{}", self.jwk(alg), self.token(alg, 0)));
        let file = dir.join(format!("{}-{count}-{fingerprint}.tokens", alg.slug()));
        if std::fs::metadata(&file).map(|m| m.len() > 0).unwrap_or(false) {
            return file;
        }
        let started = Instant::now();
        eprintln!("bench-jwt: minting {count} {} tokens (kept in {})", alg.name(), dir.display());
        let mid = count / 2;
        let halves: Vec<String> = std::thread::scope(|s| {
            let a = s.spawn(|| (0..mid).map(|i| self.token(alg, i) + "\n").collect::<String>());
            let b = s.spawn(|| (mid..count).map(|i| self.token(alg, i) + "\n").collect::<String>());
            vec![a.join().expect("minting thread"), b.join().expect("minting thread")]
        });
        std::fs::create_dir_all(&dir).expect("create the token cache folder");
        let partial = file.with_extension("partial");
        std::fs::write(&partial, halves.concat()).expect("write the tokens");
        std::fs::rename(&partial, &file).expect("keep the tokens");
        eprintln!("bench-jwt: minted in {:.1} s", started.elapsed().as_secs_f64());
        file
    }
}

fn hex_prefix(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).iter().take(6).map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// The cases.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Impl {
    None,
    ConsumerAuth,
    Baseline,
    JwtAuthn,
    JwtAuthnCached,
}

#[derive(Clone)]
struct Case {
    name: String,
    path: String,
    implementation: Impl,
    alg: Option<Alg>,
    fresh: bool,
}

fn cases(baseline: bool) -> Vec<Case> {
    let case = |implementation: Impl, alg: Option<Alg>, fresh: bool| {
        let who = match implementation {
            Impl::None => "no filter",
            Impl::ConsumerAuth => "consumer-auth",
            Impl::Baseline => "consumer-auth (baseline build)",
            Impl::JwtAuthn => "jwt_authn",
            Impl::JwtAuthnCached => "jwt_authn + jwt_cache_config",
        };
        let tag = match implementation {
            Impl::None => "none",
            Impl::ConsumerAuth => "ca",
            Impl::Baseline => "base",
            Impl::JwtAuthn => "authn",
            Impl::JwtAuthnCached => "authn-cached",
        };
        let (name, path) = match alg {
            None => (who.to_string(), format!("/{tag}")),
            Some(alg) => {
                let how = if fresh { "fresh" } else { "repeated" };
                (format!("{who} {} {how}", alg.name()), format!("/{tag}-{}-{how}", alg.slug()))
            }
        };
        Case { name, path, implementation, alg, fresh }
    };
    let mut out = vec![case(Impl::None, None, false)];
    for alg in Alg::ALL {
        out.push(case(Impl::ConsumerAuth, Some(alg), false));
        out.push(case(Impl::ConsumerAuth, Some(alg), true));
        out.push(case(Impl::JwtAuthn, Some(alg), true));
        if baseline {
            out.push(case(Impl::Baseline, Some(alg), false));
        }
    }
    out.push(case(Impl::JwtAuthnCached, Some(Alg::Rs256), false));
    out.push(case(Impl::JwtAuthnCached, Some(Alg::Es256), false));
    out
}

/// The consumer-auth instance serving a case: fresh and repeated tokens go to different
/// instances, so that fresh tokens never take the repeated tokens' cache entries.
fn instance(case: &Case) -> Option<&'static str> {
    match (case.implementation, case.fresh) {
        (Impl::ConsumerAuth, false) => Some("ca_repeated"),
        (Impl::ConsumerAuth, true) => Some("ca_fresh"),
        (Impl::Baseline, _) => Some("ca_baseline"),
        _ => None,
    }
}

fn document(keys: &Keys) -> String {
    let secrets: Vec<Value> = Alg::ALL
        .iter()
        .map(|&alg| match keys.public_pem(alg) {
            None => json!({ "key": alg.issuer(), "algorithm": alg.name(), "secret": HS256_SECRET }),
            Some(pem) => json!({ "key": alg.issuer(), "algorithm": alg.name(), "rsa_public_key": pem }),
        })
        .collect();
    json!({
        "consumers": [{ "username": "bench", "jwt_secrets": secrets }],
        "plugins": [{ "name": "jwt" }]
    })
    .to_string()
}

fn bootstrap(keys: &Keys, cases: &[Case], wasm: &str, baseline: Option<&str>) -> Value {
    let doc = document(keys);
    let mut filters = vec![wasm_filter_entry("ca_repeated", &doc, "FAIL_CLOSED", wasm)];
    filters.push(wasm_filter_entry("ca_fresh", &doc, "FAIL_CLOSED", wasm));
    if let Some(baseline) = baseline {
        let mut entry = wasm_filter_entry("ca_baseline", &doc, "FAIL_CLOSED", baseline);
        entry["typed_config"]["config"]["vm_config"]["vm_id"] = json!("consumer_auth_baseline");
        filters.push(entry);
    }
    let mut providers = serde_json::Map::new();
    let mut requirements = serde_json::Map::new();
    for alg in Alg::ALL {
        let jwks = json!({ "keys": [keys.jwk(alg)] }).to_string();
        for cached in [false, true] {
            let name = format!("{}{}", alg.slug(), if cached { "_cached" } else { "" });
            let mut provider = json!({ "local_jwks": { "inline_string": jwks } });
            if cached {
                provider["jwt_cache_config"] = json!({ "jwt_cache_size": 1000 });
            }
            providers.insert(name.clone(), provider);
            requirements.insert(name.clone(), json!({ "provider_name": name }));
        }
    }
    filters.push(json!({
        "name": "jwt_authn",
        "disabled": true,
        "typed_config": { "@type": JWT_AUTHN, "providers": providers, "requirement_map": requirements }
    }));
    filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" }
    }));
    let routes: Vec<Value> = cases
        .iter()
        .map(|case| {
            let mut route = json!({
                "match": { "path": case.path },
                "direct_response": { "status": 200, "body": { "inline_string": "ok\n" } }
            });
            let per_filter = match (case.implementation, case.alg) {
                (Impl::JwtAuthn | Impl::JwtAuthnCached, Some(alg)) => {
                    let cached = if case.implementation == Impl::JwtAuthnCached { "_cached" } else { "" };
                    let requirement = format!("{}{cached}", alg.slug());
                    Some(("jwt_authn", json!({ "@type": JWT_AUTHN_ROUTE, "requirement_name": requirement })))
                }
                _ => instance(case).map(|name| (name, json!({}))),
            };
            if let Some((filter, config)) = per_filter {
                route["typed_per_filter_config"] = json!({ filter: { "@type": FILTER_CONFIG, "config": config } });
            }
            route
        })
        .collect();
    bench_bootstrap(routes, filters)
}

// ---------------------------------------------------------------------------------------------
// Running.

struct Settings {
    seconds: u64,
    fresh_seconds: u64,
    runs: usize,
    warmup: u64,
    connections: u32,
    tokens: usize,
    baseline: Option<PathBuf>,
    results_dir: PathBuf,
    pin: bool,
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            seconds: env_or("BENCH_SECONDS", 5u64).max(1),
            fresh_seconds: env_or("BENCH_FRESH_SECONDS", 2u64).max(1),
            runs: env_or("BENCH_RUNS", 3usize).max(1),
            warmup: env_or("BENCH_WARMUP", 1u64),
            connections: env_or("BENCH_CONNECTIONS", 10u32).max(1),
            tokens: env_or("BENCH_JWT_TOKENS", 60_000usize).max(100),
            baseline: std::env::var_os("BENCH_BASELINE_WASM").filter(|v| !v.is_empty()).map(PathBuf::from),
            results_dir: std::env::var_os("BENCH_RESULTS_DIR")
                .filter(|d| !d.is_empty())
                .map(Into::into)
                .unwrap_or_else(|| consumer_auth_e2e::workspace_root().join("bench-results")),
            pin: can_pin(),
        }
    }
}

/// The wrk script of fresh cases: request `i` sends token `offset + i` of the pool.
const FRESH_LUA: &str = r#"
local tokens = {}
local i = 0
function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  i = tonumber(args[2])
end
function request()
  local token = tokens[(i % #tokens) + 1]
  i = i + 1
  return wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. token })
end
"#;

struct Bench<'a> {
    settings: &'a Settings,
    envoy: &'a Envoy,
    keys: &'a Keys,
    script: PathBuf,
    pools: BTreeMap<Alg, (PathBuf, usize)>,
    /// Next unused token of each fresh case's pool, by case path.
    offsets: BTreeMap<String, usize>,
}

#[derive(Default, Clone, Copy)]
struct CacheCounts {
    hits: u64,
    misses: u64,
}

impl Bench<'_> {
    fn load(&mut self, case: &Case, seconds: u64) -> (Run, CacheCounts) {
        let mut load = Load::new(self.envoy.port, case.path.clone(), seconds);
        load.connections = self.settings.connections;
        load.pin = self.settings.pin;
        load.proxy_pid = Some(self.envoy.pid());
        match (case.alg, case.fresh) {
            (Some(alg), true) => {
                let (pool, _) = &self.pools[&alg];
                let offset = self.offsets.get(&case.path).copied().unwrap_or(0);
                load.script = Some((self.script.clone(), vec![pool.display().to_string(), offset.to_string()]));
            }
            (Some(alg), false) => {
                load.headers.push(("authorization".into(), format!("Bearer {}", self.keys.token(alg, usize::MAX))))
            }
            (None, _) => {}
        }
        let before = cache_counts(self.envoy);
        let run = consumer_auth_e2e::measure::wrk(&load);
        let after = cache_counts(self.envoy);
        assert_eq!(run.non_2xx, 0, "{}: {} of {} answers were not 200", case.name, run.non_2xx, run.requests);
        if case.fresh {
            *self.offsets.entry(case.path.clone()).or_default() += run.requests as usize;
        }
        let counts = CacheCounts {
            hits: after.hits.saturating_sub(before.hits),
            misses: after.misses.saturating_sub(before.misses),
        };
        (run, counts)
    }
}

fn cache_counts(envoy: &Envoy) -> CacheCounts {
    envoy.await_metrics_flush();
    CacheCounts {
        hits: envoy.stat("wasmcustom.consumer_auth_jwt_cache_total.outcome.hit"),
        misses: envoy.stat("wasmcustom.consumer_auth_jwt_cache_total.outcome.miss"),
    }
}

/// Every route answers 200 with its token and 401 without one (the filter is on the route).
fn check_routes(envoy: &Envoy, keys: &Keys, cases: &[Case]) {
    for case in cases {
        let Some(alg) = case.alg else { continue };
        let token = keys.token(alg, usize::MAX - 1);
        let r = Request::get(&case.path).header("authorization", &format!("Bearer {token}")).send(envoy.port);
        assert_eq!(r.status, 200, "{} with a token: {}", case.name, r.text());
        let r = Request::get(&case.path).send(envoy.port);
        assert_eq!(r.status, 401, "{} without a token: {}", case.name, r.text());
        // the signature's first character changed (its bits all count)
        let cut = token.rfind('.').map_or(0, |i| i + 1);
        let first = if token[cut..].starts_with('A') { "B" } else { "A" };
        let forged = format!("{}{first}{}", &token[..cut], &token[cut + 1..]);
        let r = Request::get(&case.path).header("authorization", &format!("Bearer {forged}")).send(envoy.port);
        assert_eq!(r.status, 401, "{} with a bad signature: {}", case.name, r.text());
    }
}

struct Row {
    runs: Vec<Run>,
    cache: CacheCounts,
    requests: u64,
}

fn main() -> ExitCode {
    let settings = Settings::from_env();
    let started = SystemTime::now();
    let clock = Instant::now();
    let load_at_start = loadavg();
    let wasm = consumer_auth_e2e::filter_wasm().display().to_string();
    let baseline = settings.baseline.as_ref().map(|p| {
        assert!(p.is_file(), "BENCH_BASELINE_WASM={} does not exist", p.display());
        p.display().to_string()
    });
    let keys = Keys::derive();
    let cases = cases(baseline.is_some());
    let pools: BTreeMap<Alg, (PathBuf, usize)> =
        Alg::ALL.iter().map(|&alg| (alg, (keys.pool(alg, settings.tokens), settings.tokens))).collect();
    let config = bootstrap(&keys, &cases, &wasm, baseline.as_deref());
    let envoy = Envoy::start_json(&config, settings.pin.then_some(PROXY_CPU), Duration::from_secs(120))
        .unwrap_or_else(|f| panic!("Envoy did not start ({:?}); its log:\n{}", f.status, f.log));
    check_routes(&envoy, &keys, &cases);
    let script = std::env::temp_dir().join(format!("bench-jwt-{}.lua", std::process::id()));
    std::fs::write(&script, FRESH_LUA).expect("write the wrk script");
    let mut bench = Bench { settings: &settings, envoy: &envoy, keys: &keys, script, pools, offsets: BTreeMap::new() };
    let seconds = |case: &Case| if case.fresh { settings.fresh_seconds } else { settings.seconds };
    if settings.warmup > 0 {
        for case in &cases {
            eprintln!("bench-jwt: warm-up {}", case.name);
            bench.load(case, settings.warmup);
        }
    }
    let mut rows: Vec<Row> =
        cases.iter().map(|_| Row { runs: Vec::new(), cache: CacheCounts::default(), requests: 0 }).collect();
    for round in 0..settings.runs {
        for (case, row) in cases.iter().zip(rows.iter_mut()) {
            let (run, cache) = bench.load(case, seconds(case));
            eprintln!(
                "bench-jwt: run {}/{} {}: {:.0} req/s, Envoy CPU {:.1} µs/req, cache hits {} misses {}",
                round + 1,
                settings.runs,
                case.name,
                run.rps,
                run.cpu_us,
                cache.hits,
                cache.misses
            );
            row.cache.hits += cache.hits;
            row.cache.misses += cache.misses;
            row.requests += run.requests;
            row.runs.push(run);
        }
    }
    let _ = std::fs::remove_file(&bench.script);
    let wrapped: Vec<String> = cases
        .iter()
        .filter(|c| c.fresh && instance(c).is_some())
        .filter(|c| bench.offsets.get(&c.path).copied().unwrap_or(0) > settings.tokens)
        .map(|c| c.name.clone())
        .collect();
    let text = report(&settings, &cases, &rows, &wrapped, clock.elapsed(), (load_at_start, loadavg()), started);
    print!("{text}");
    let name = format!("{}-jwt", timestamp(started.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()));
    match save_report(&settings.results_dir, &name, &text) {
        Ok(file) => eprintln!("bench-jwt: results in {}", file.display()),
        Err(e) => {
            eprintln!("bench-jwt: cannot write the report: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn report(
    settings: &Settings,
    cases: &[Case],
    rows: &[Row],
    wrapped: &[String],
    elapsed: Duration,
    load: (String, String),
    started: SystemTime,
) -> String {
    let mut out = String::new();
    let when = timestamp(started.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs());
    let _ = writeln!(out, "# consumer-auth jwt benchmark, {when}\n");
    let _ = writeln!(out, "- machine: {}", machine());
    let _ = writeln!(
        out,
        "- Envoy `--concurrency 1`{}; wrk `-t1 -c{}`; loopback; `direct_response` routes; one Envoy for every case",
        if settings.pin { " pinned to CPU 0, wrk to CPU 1" } else { " (not pinned: one CPU)" },
        settings.connections
    );
    let _ = writeln!(
        out,
        "- {} interleaved round(s): {} s per repeated-token run, {} s per fresh-token run; {} s warm-up per case; total {:.0} s",
        settings.runs,
        settings.seconds,
        settings.fresh_seconds,
        settings.warmup,
        elapsed.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "- fresh: a distinct pre-minted token per request ({} per algorithm); RSA-2048, P-256, Ed25519 keys",
        settings.tokens
    );
    let _ = writeln!(
        out,
        "- req/s and CPU/req: medians of the runs; +CPU: Envoy's CPU per request minus the no-filter route's"
    );
    let _ = writeln!(out, "- load average (1 min) at start {} and at end {}\n", load.0, load.1);
    let none = rows.first().map(|r| median(r.runs.iter().map(|r| r.cpu_us).collect())).unwrap_or(0.0);
    let none_rps = rows.first().map(|r| median(r.runs.iter().map(|r| r.rps).collect())).unwrap_or(0.0);
    let _ = writeln!(out, "| case | req/s | vs none | p50 | CPU/req | +CPU | cache hits / misses |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---|");
    let mut extra = BTreeMap::new();
    for (case, row) in cases.iter().zip(rows) {
        let rps = median(row.runs.iter().map(|r| r.rps).collect());
        let cpu = median(row.runs.iter().map(|r| r.cpu_us).collect());
        let p50 = median(row.runs.iter().map(|r| r.p50_us).collect());
        extra.insert(case.path.clone(), (rps, cpu - none));
        let cache = if instance(case).is_some() && case.implementation == Impl::ConsumerAuth {
            format!("{} / {}", row.cache.hits, row.cache.misses)
        } else {
            "–".into()
        };
        let _ = writeln!(
            out,
            "| {} | {rps:.0} | {:.2} | {} | {cpu:.1} µs | {:+.1} µs | {cache} |",
            case.name,
            if none_rps > 0.0 { rps / none_rps } else { 0.0 },
            latency(p50),
            cpu - none
        );
    }
    let find = |implementation: Impl, alg: Alg, fresh: bool| {
        cases
            .iter()
            .find(|c| c.implementation == implementation && c.alg == Some(alg) && c.fresh == fresh)
            .and_then(|c| extra.get(&c.path).copied())
    };
    let _ = writeln!(out, "\nTargets (issue 13):\n");
    let _ = writeln!(out, "| comparison | +CPU ratio | req/s ratio |");
    let _ = writeln!(out, "|---|---:|---:|");
    for alg in [Alg::Rs256, Alg::Es256, Alg::EdDsa, Alg::Hs256] {
        if let (Some(ours), Some(theirs)) = (find(Impl::ConsumerAuth, alg, true), find(Impl::JwtAuthn, alg, true)) {
            let _ = writeln!(
                out,
                "| fresh {}: consumer-auth / jwt_authn{} | {:.2} | {:.2} |",
                alg.name(),
                if matches!(alg, Alg::Rs256 | Alg::Es256) { " (target +CPU ≤ 3)" } else { "" },
                ours.1 / theirs.1.max(0.01),
                ours.0 / theirs.0.max(0.01)
            );
        }
    }
    if let Some(hs) = find(Impl::ConsumerAuth, Alg::Hs256, false) {
        for alg in [Alg::Rs256, Alg::Es256, Alg::EdDsa] {
            if let Some(ours) = find(Impl::ConsumerAuth, alg, false) {
                let _ = writeln!(
                    out,
                    "| repeated {} / repeated HS256, consumer-auth{} | {:.2} | {:.2} |",
                    alg.name(),
                    if matches!(alg, Alg::Rs256 | Alg::Es256) { " (target req/s ≥ 0.9)" } else { "" },
                    ours.1 / hs.1.max(0.01),
                    ours.0 / hs.0.max(0.01)
                );
            }
        }
    }
    for alg in Alg::ALL {
        if let (Some(now), Some(before)) = (find(Impl::ConsumerAuth, alg, false), find(Impl::Baseline, alg, false)) {
            let _ = writeln!(
                out,
                "| repeated {}: this build / baseline build | {:.2} | {:.2} |",
                alg.name(),
                now.1 / before.1.max(0.01),
                now.0 / before.0.max(0.01)
            );
        }
    }
    if !wrapped.is_empty() {
        let _ = writeln!(
            out,
            "\n**The token pool wrapped** for {} (raise BENCH_JWT_TOKENS): a token came round again after {} \
             others, by which time the filter's first-in-first-out cache ({} entries) had let it go: \
             the hits column says whether any repeat was still served from the cache.",
            wrapped.join(", "),
            settings.tokens - 1,
            DEFAULT_TOKEN_CACHE_ENTRIES
        );
    }
    let _ = writeln!(out, "\nPer-run req/s and Envoy CPU per request (in run order):\n");
    for (case, row) in cases.iter().zip(rows) {
        let runs: Vec<String> = row.runs.iter().map(|r| format!("{:.0} ({:.1} µs)", r.rps, r.cpu_us)).collect();
        let _ = writeln!(out, "- {}: {} ({} requests)", case.name, runs.join(", "), row.requests);
    }
    out
}
