//! Seeds no test sends as such, written into `<dir>/<target>/` (`make fuzz-seeds` runs it after
//! taking the harness's requests and documents, then minimises everything into `corpus/`):
//! tokens signed with the fuzz crate's test keys for every algorithm, hmac requests signed at
//! the fuzz clock, the request module's unit-test bodies, handoffs, store corruptions.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds -- <dir>`

use std::path::{Path, PathBuf};

use base64::Engine;
use consumer_auth::identity::Identity;
use consumer_auth::time::http_date;
use consumer_auth_fuzz::{b64url, jwt_key_for, sign, ALGORITHMS, DEFAULT_NOW};
use serde_json::json;

struct Out(PathBuf, usize);

impl Out {
    fn put(&mut self, target: &str, content: impl AsRef<[u8]>) {
        let dir = self.0.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        self.1 += 1;
        std::fs::write(dir.join(format!("seed-{:05}", self.1)), content).unwrap();
    }
    /// A request for every target that takes one (`@doc` only where the target reads it).
    fn request(&mut self, request: &str) {
        for target in ["request_view", "key_auth", "basic_auth", "hmac_auth", "jwt", "whole_request"] {
            self.put(target, request);
        }
        self.put("identity", format!("\n{request}"));
        for doc in ["@doc 1\n", "@doc 2\n"] {
            self.put("whole_request", format!("{doc}{request}"));
        }
    }
}

fn token(alg: &str, claims: serde_json::Value) -> String {
    let input = format!(
        "{}.{}",
        b64url(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    format!("{input}.{}", b64url(&sign(alg, input.as_bytes())))
}

fn hmac_signature(secret: &str, signing: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(signing.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: seeds <dir>");
    let mut out = Out(Path::new(&dir).to_path_buf(), 0);
    let now = DEFAULT_NOW;

    // jwt: every algorithm, in the header, the query and a cookie, with registered claims
    for (i, alg) in ALGORITHMS.iter().enumerate() {
        let key = jwt_key_for(alg);
        let t = token(alg, json!({"iss": key, "exp": now + 60, "nbf": now - 60}));
        out.request(&format!("GET /\nauthorization: Bearer {t}\n"));
        out.request(&format!("GET /?jwt={}\n", token(alg, json!({"iss": key}))));
        out.request(&format!("GET /\ncookie: a=b; jwt={}\n", token(alg, json!({"iss": key, "exp": now - 1}))));
        let input = t.rsplit_once('.').unwrap().0.to_string();
        let i = i as u8;
        out.put("jwt_verify", [&[i, 0][..], t.as_bytes()].concat());
        out.put("jwt_verify", [&[i, 1][..], input.as_bytes()].concat());
        out.put("jwt_verify", [&[i, 2, 3, 0, 0x80][..], input.as_bytes()].concat());
        let pem = match &alg[..2] {
            "RS" | "PS" => consumer_auth_fuzz::rsa_pem(),
            "ES" if *alg == "ES256" => consumer_auth_fuzz::p256_pem(),
            "ES" => consumer_auth_fuzz::p384_pem(),
            _ => consumer_auth_fuzz::ed25519_pem(),
        };
        let sig = sign(alg, input.as_bytes());
        out.put("jwt_verify", [&[i, 3][..], pem.as_bytes(), b"\0", input.as_bytes(), b"\0", &sig].concat());
    }
    out.put("jwt", format!("@doc 1\nGET /\nx-token: {}\n", token("HS256", json!({"kid": "alice-issuer"}))));

    // hmac-auth: alice's credential over date, request-line and the body digest, at the fuzz clock
    let date = http_date(now);
    let body = r#"{"a":1}"#;
    let digest = consumer_auth::plugins::hmac_auth::body_digest(body.as_bytes());
    let signing = format!("date: {date}\nPOST /p?x=1 HTTP/1.1\ndigest: {digest}");
    let auth = format!(
        r#"hmac username="alice-hmac", algorithm="hmac-sha256", headers="date request-line digest", signature="{}""#,
        hmac_signature("alice-hmac-secret", &signing)
    );
    let signed = format!(
        "@protocol HTTP/1.1\nPOST /p?x=1\ndate: {date}\ndigest: {digest}\nauthorization: {auth}\ncontent-type: application/json\n\n{body}"
    );
    out.request(&signed);
    out.put("hmac_auth", format!("@doc 1\n{signed}"));
    out.request(&format!("GET /\nx-date: {}\nproxy-authorization: hmac username=\"bob-hmac\", algorithm=\"hmac-sha1\", headers=\"x-date\", signature=\"AAAA\"\n", http_date(now - 10)));
    for d in ["Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "Sun, 06 Nov 1994 08:49:37 GMT"] {
        out.put("hmac_auth", format!("GET /\ndate: {d}\n"));
    }

    // key-auth and basic-auth, in every place, with spoofed identity headers
    let basic = base64::engine::general_purpose::STANDARD.encode("alice-basic:alice-pw");
    out.request(&format!(
        "GET /\nauthorization: Basic {basic}\nx-consumer-username: mallory\nX-Credential-Identifier: x\n"
    ));
    out.request(&format!("OPTIONS /\nproxy-authorization: basic {basic}\n"));
    out.request("GET /a?apikey=alice-key&b=2\nx-anonymous-consumer: true\n");
    out.request("GET /\nX-Api-Key: carol-key\napikey: bob-key\n");
    out.request("POST /\ncontent-type: application/x-www-form-urlencoded\n\na=1&apikey=alice-key&b=2");
    out.request("POST /\ncontent-type: application/json\n\n{\"apikey\":\"bob-key\",\"z\":[1]}");
    out.request("POST /\ncontent-type: multipart/form-data; boundary=XX\n\n--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XX\r\nContent-Disposition: form-data; name=\"apikey\"\r\n\r\nalice-key\r\n--XX--\r\n");
    out.request("@ip 10.0.0.7\nGET /\n");

    // the body parsers: the request module's unit-test bodies
    for (ct, body) in [
        ("application/x-www-form-urlencoded", "a=1&apikey=k&b=2"),
        ("application/json; charset=utf-8", r#"{"z":1,"apikey":"k","a":[1]}"#),
        ("multipart/form-data; boundary=XX", "--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XX\r\nContent-Disposition: form-data; name=\"apikey\"\r\n\r\nk\r\n--XX--\r\n"),
        ("text/plain", "apikey=k"),
        ("application/json", "{bad"),
    ] {
        out.put("body", format!("{ct}\n{body}"));
    }

    // the handoff: what the filter encodes, with the request that carries it
    let alice = std::rc::Rc::new(consumer_auth::consumers::Consumer {
        id: "0d4e8c5a-6b3f-4f7e-9d51-3f0c8a1e2b77".into(),
        username: Some("alice".into()),
        custom_id: Some("crm-1042".into()),
        groups: vec!["admins".into()],
    });
    let mut identity = Identity::authenticated(alice.clone(), "alice-key-id".into(), "key-auth");
    identity.groups_header = Some("admins".into());
    for i in [identity, Identity::anonymous(alice)] {
        let encoded = String::from_utf8(i.encode()).unwrap();
        out.put(
            "identity",
            format!("{encoded}\nGET /\nx-consumer-id: spoofed\nx-consumer-groups: a\nX-Consumer-Groups: b\n"),
        );
        out.put("whole_request", format!("@handoff {encoded}\nGET /?apikey=bob-key\nx-consumer-username: alice\n"));
    }

    // the store: each entry replaced, and patched
    for pick in 0u8..12 {
        out.put("store_records", [pick, 0, b'1', b' ', b'1']);
        out.put("store_records", [pick, 1, 0, 0, 0xff, 7, 0, 1]);
    }

    // the consumers document of the fixed documents
    out.put("consumers_stream", json!({"consumers": consumer_auth_fuzz::consumers()}).to_string());
    out.put("config", json!({"consumers": consumer_auth_fuzz::consumers(), "plugins": []}).to_string());
    println!("{} seeds in {dir}", out.1);
}
