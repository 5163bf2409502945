//! `consumer-auth hash`: the values a document may hold instead of a secret, computed by the
//! engine's own functions (the ones it verifies with), so a printed value is always accepted.

use consumer_auth::config::Config;
use consumer_auth::consumers;

/// The `key_hash` of a key-auth key: `sha256:<64 hex digits>`.
pub fn key_hash(key: &str) -> Result<String, String> {
    if key.is_empty() {
        // The filter refuses an empty key (`length must be at least 1`): there is nothing to hash.
        return Err("the key is empty".into());
    }
    Ok(consumers::key_hash_value(key.as_bytes()))
}

/// The `password_hash` of a basic-auth password: Kong's salted form `hex(sha1(password ..
/// consumer_id))` with a consumer id (the consumer's `id` must then be that id), else
/// `sha256:<hex of sha256(password)>`.
pub fn password_hash(password: &str, consumer_id: Option<&str>) -> Result<String, String> {
    let Some(id) = consumer_id else {
        return Ok(format!("sha256:{}", hex_of(&consumers::sha256(password.as_bytes()))));
    };
    let value = consumers::kong_password_hash_value(password.as_bytes(), id);
    // The consumer id must be one the filter accepts (a canonical UUID): ask the engine.
    let doc = serde_json::json!({ "consumers": [ { "id": id, "username": "u",
        "basicauth_credentials": [ { "username": "u", "password_hash": value } ] } ] });
    Config::parse(doc.to_string().as_bytes()).map_err(|e| match e.path.as_str() {
        "consumers[0].id" => format!("--consumer-id: {}", e.kind),
        _ => e.to_string(),
    })?;
    Ok(value)
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A secret read from standard input: the whole input without one trailing newline (`\n` or
/// `\r\n`), so `echo secret | consumer-auth hash key` hashes `secret`.
pub fn secret_from_input(mut input: String) -> String {
    if input.ends_with('\n') {
        input.pop();
        if input.ends_with('\r') {
            input.pop();
        }
    }
    input
}

#[cfg(test)]
mod tests {
    use super::*;
    use consumer_auth::config::ConsumerSource;
    use consumer_auth::pipeline::{self, Host, LogLevel, Outcome, Verdict};
    use consumer_auth::request::{Body, Request};

    struct Clock;
    impl Host for Clock {
        fn now_unix_seconds(&mut self) -> u64 {
            1_700_000_000
        }
        fn log(&mut self, _level: LogLevel, _message: &str) {}
    }

    /// Run one request through the engine's pipeline with `doc`; the verdict.
    fn run(doc: &serde_json::Value, headers: &[(&str, &str)]) -> Result<Verdict, u16> {
        let config = Config::parse(doc.to_string().as_bytes()).expect("the document is accepted");
        let headers: Vec<(String, Vec<u8>)> =
            headers.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect();
        let request = Request::new("GET", "/", &headers, Body::Empty);
        match pipeline::run(&config, &request, None, &mut Clock) {
            Outcome::Forward(f) => Ok(f.verdict),
            Outcome::Reject(r) => Err(r.status),
            Outcome::NeedBody | Outcome::NeedCounters(_) => Err(0),
        }
    }

    fn basic(user: &str, password: &str) -> String {
        use std::io::Write;
        // base64 by hand (the engine decodes; the test must not borrow its encoder).
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let raw = format!("{user}:{password}").into_bytes();
        let mut out = Vec::new();
        for chunk in raw.chunks(3) {
            let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]);
                } else {
                    out.push(b'=');
                }
            }
        }
        let mut s = Vec::new();
        write!(s, "Basic {}", String::from_utf8(out).unwrap()).unwrap();
        String::from_utf8(s).unwrap()
    }

    #[test]
    fn a_printed_key_hash_authenticates_that_key_through_the_engine() {
        let hash = key_hash("s3cret-key").unwrap();
        // `printf %s s3cret-key | sha256sum`
        assert_eq!(hash, "sha256:817b823905cc7853f381992575a9041fcdb17fc70e776707abfb4d7c59ecbf3f");
        let doc = serde_json::json!({
            "consumers": [ { "username": "alice", "keyauth_credentials": [ { "key_hash": hash } ] } ],
            "plugins": [ { "name": "key-auth" } ] });
        assert_eq!(run(&doc, &[("apikey", "s3cret-key")]), Ok(Verdict::Authenticated("key-auth")));
        assert_eq!(run(&doc, &[("apikey", "s3cret-kez")]), Err(401));
        let config = Config::parse(doc.to_string().as_bytes()).unwrap();
        let ConsumerSource::Inline(index) = &config.consumers else { panic!("inline") };
        assert!(index.key(b"s3cret-key").is_some());
    }

    #[test]
    fn a_printed_password_hash_authenticates_that_password_through_the_engine() {
        let id = "0d4e8c5a-6b3f-4f7e-9d51-3f0c8a1e2b77";
        for (hash, consumer_id) in
            [(password_hash("pa:ss word", Some(id)).unwrap(), id), (password_hash("pa:ss word", None).unwrap(), id)]
        {
            let doc = serde_json::json!({
                "consumers": [ { "id": consumer_id, "username": "alice",
                                 "basicauth_credentials": [ { "username": "alice", "password_hash": hash } ] } ],
                "plugins": [ { "name": "basic-auth" } ] });
            assert_eq!(
                run(&doc, &[("authorization", &basic("alice", "pa:ss word"))]),
                Ok(Verdict::Authenticated("basic-auth")),
                "{hash}"
            );
            assert_eq!(run(&doc, &[("authorization", &basic("alice", "pa:ss wordx"))]), Err(401));
        }
        // Salted with another consumer id it does not match.
        let other = password_hash("pw", Some("1e5f9d6b-7c4a-4a8f-8e62-4a1d9b2f3c88")).unwrap();
        let doc = serde_json::json!({
            "consumers": [ { "id": id, "username": "alice",
                             "basicauth_credentials": [ { "username": "alice", "password_hash": other } ] } ],
            "plugins": [ { "name": "basic-auth" } ] });
        assert_eq!(run(&doc, &[("authorization", &basic("alice", "pw"))]), Err(401));
    }

    #[test]
    fn kongs_salted_form_is_kongs() {
        // Kong's basic-auth stores sha1(password .. consumer_id), as hex: the password "kong"
        // of consumer id "0d4e..." (computed independently with `printf %s | sha1sum`).
        let h = password_hash("kong", Some("0d4e8c5a-6b3f-4f7e-9d51-3f0c8a1e2b77")).unwrap();
        assert_eq!(h, "3065ab47b45e72a85015651854918cc8dfbeca5a");
    }

    #[test]
    fn bad_input_is_refused() {
        assert_eq!(key_hash(""), Err("the key is empty".into()));
        assert_eq!(password_hash("pw", Some("not-a-uuid")), Err("--consumer-id: expected a valid UUID".into()));
        assert_eq!(secret_from_input("abc\r\n".into()), "abc");
        assert_eq!(secret_from_input("abc\n\n".into()), "abc\n");
        assert_eq!(secret_from_input("abc".into()), "abc");
    }
}
