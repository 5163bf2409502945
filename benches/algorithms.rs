//! Per-algorithm cost of jwt verification through the real .wasm (the wasmtime harness), as a
//! ratio to HS256. Not a test: run with `make bench-algorithms` (N requests per algorithm,
//! median time per request). `baseline` is a request refused before any signature is checked
//! (unknown key), so `median - baseline` is roughly the verification itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

// The harness tests' helpers (one copy for tests and benches); a bench uses only some of them.
#[allow(dead_code)]
#[path = "../tests/harness/support.rs"]
mod support;

use std::time::Instant;

use hmac::{Hmac, Mac};
use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer};
use support::b64url as b64;
use support::*;

fn main() {
    let n: usize = std::env::var("N").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let mut rng = rand::rngs::OsRng;
    let rsa_key = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let p256_key = p256::ecdsa::SigningKey::random(&mut rng);
    let p384_key = p384::ecdsa::SigningKey::random(&mut rng);
    let ed_key = ed25519_dalek::SigningKey::generate(&mut rng);
    let rsa_pem = {
        use rsa::pkcs8::EncodePublicKey;
        rsa_key.to_public_key().to_public_key_pem(rsa::pkcs8::LineEnding::LF).unwrap()
    };
    let p256_pem = {
        use p256::pkcs8::EncodePublicKey;
        p256_key.verifying_key().to_public_key_pem(p256::pkcs8::LineEnding::LF).unwrap()
    };
    let p384_pem = {
        use p384::pkcs8::EncodePublicKey;
        p384_key.verifying_key().to_public_key_pem(p384::pkcs8::LineEnding::LF).unwrap()
    };
    let ed_pem = {
        use ed25519_dalek::pkcs8::EncodePublicKey;
        ed_key.verifying_key().to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF).unwrap()
    };
    let algorithms =
        ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];
    let secrets: Vec<serde_json::Value> = algorithms
        .iter()
        .map(|alg| {
            let mut s = json!({"key": format!("k-{alg}"), "algorithm": alg});
            match &alg[..2] {
                "HS" => s["secret"] = json!("bench-secret"),
                "RS" | "PS" => s["rsa_public_key"] = json!(rsa_pem),
                _ if *alg == "ES256" => s["rsa_public_key"] = json!(p256_pem),
                _ if *alg == "ES384" => s["rsa_public_key"] = json!(p384_pem),
                _ => s["rsa_public_key"] = json!(ed_pem),
            }
            s
        })
        .collect();
    let config = json!({
        "consumers": [{"username": "bench", "jwt_secrets": secrets}],
        "plugins": [{"name": "jwt"}]
    })
    .to_string();
    let mut h = host();
    let f = h.configure(&config).unwrap();

    let sign = |alg: &str, input: &[u8]| -> Vec<u8> {
        macro_rules! hs {
            ($d:ty) => {{
                let mut m = Hmac::<$d>::new_from_slice(b"bench-secret").unwrap();
                m.update(input);
                m.finalize().into_bytes().to_vec()
            }};
        }
        let mut rng = rand::rngs::OsRng;
        match alg {
            "HS256" => hs!(sha2::Sha256),
            "HS384" => hs!(sha2::Sha384),
            "HS512" => hs!(sha2::Sha512),
            "RS256" => rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(rsa_key.clone()).sign(input).to_vec(),
            "RS384" => rsa::pkcs1v15::SigningKey::<sha2::Sha384>::new(rsa_key.clone()).sign(input).to_vec(),
            "RS512" => rsa::pkcs1v15::SigningKey::<sha2::Sha512>::new(rsa_key.clone()).sign(input).to_vec(),
            "PS256" => {
                rsa::pss::SigningKey::<sha2::Sha256>::new(rsa_key.clone()).sign_with_rng(&mut rng, input).to_vec()
            }
            "PS384" => {
                rsa::pss::SigningKey::<sha2::Sha384>::new(rsa_key.clone()).sign_with_rng(&mut rng, input).to_vec()
            }
            "PS512" => {
                rsa::pss::SigningKey::<sha2::Sha512>::new(rsa_key.clone()).sign_with_rng(&mut rng, input).to_vec()
            }
            "ES256" => {
                let s: p256::ecdsa::Signature = p256_key.sign(input);
                s.to_bytes().to_vec()
            }
            "ES384" => {
                let s: p384::ecdsa::Signature = p384_key.sign(input);
                s.to_bytes().to_vec()
            }
            _ => {
                use ed25519_dalek::Signer as _;
                ed_key.sign(input).to_bytes().to_vec()
            }
        }
    };
    let token = |alg: &str, key: &str| {
        let input = format!(
            "{}.{}",
            b64(json!({"alg": alg}).to_string().as_bytes()),
            b64(json!({"iss": key}).to_string().as_bytes())
        );
        let sig = sign(alg, input.as_bytes());
        format!("{input}.{}", b64(&sig))
    };

    let mut median_of = |t: &str, expect: u16| -> f64 {
        let req = Request::get("/").header("authorization", &format!("Bearer {t}"));
        for _ in 0..20 {
            assert_eq!(h.send(&[f], req.clone()).status(), expect);
        }
        let mut times: Vec<f64> = (0..n)
            .map(|_| {
                let start = Instant::now();
                let ex = h.send(&[f], req.clone());
                let elapsed = start.elapsed().as_secs_f64() * 1e6;
                assert_eq!(ex.status(), expect);
                elapsed
            })
            .collect();
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        times[times.len() / 2]
    };

    let baseline = median_of(&token("HS256", "unknown-key"), 401);
    let results: Vec<(&str, f64)> =
        algorithms.iter().map(|alg| (*alg, median_of(&token(alg, &format!("k-{alg}")), 200))).collect();
    let hs256 = results[0].1;
    println!("jwt verification through the harness, {n} requests per algorithm, median per request");
    println!("{:<8} {:>12} {:>10} {:>18} {:>16}", "alg", "median µs", "÷ HS256", "minus baseline µs", "÷ HS256 (net)");
    println!("{:<8} {:>12.1} {:>10} {:>18} {:>16}", "baseline", baseline, "", "", "");
    for (alg, t) in &results {
        println!(
            "{:<8} {:>12.1} {:>10.2} {:>18.1} {:>16.1}",
            alg,
            t,
            t / hs256,
            t - baseline,
            (t - baseline) / (hs256 - baseline).max(0.1)
        );
    }
}
