//! AND / OR (BEHAVIOUR.md §B3): a reference model, written down independently of the filter, and
//! the matrix of key-auth + basic-auth in every mode, in one instance and split over two chained
//! instances; run on Envoy (tests/through_envoy.rs). On the Kong model the harness checks the same
//! modes give Envoy's answers (tests/harness/kong_cases.rs, `and_or_on_kong_answers_as_on_envoy`).

use consumer_auth_e2e::fixtures::{plugin, Consumer, ALICE, ANONYMOUS, BOB, GUEST, SPOOFED};
use consumer_auth_e2e::http::{Request, Response};
use serde_json::{json, Value};

use super::{seen, Seen};

const JSON_UTF8: &str = "application/json; charset=utf-8";

fn key_auth(config: Value) -> Value {
    plugin("key-auth", config)
}

fn basic_auth(config: Value) -> Value {
    plugin("basic-auth", config)
}

#[derive(Clone, Copy)]
pub enum Anon {
    Id(&'static Consumer),
    Name(&'static Consumer),
}

impl Anon {
    pub fn reference(self) -> &'static str {
        match self {
            Anon::Id(c) => c.id,
            Anon::Name(c) => c.username,
        }
    }

    pub fn consumer(self) -> &'static Consumer {
        match self {
            Anon::Id(c) | Anon::Name(c) => c,
        }
    }
}

pub struct Mode {
    pub name: &'static str,
    pub key: Option<Anon>,
    pub basic: Option<Anon>,
}

pub const MODES: [Mode; 5] = [
    Mode { name: "and_and", key: None, basic: None },
    Mode { name: "or_or", key: Some(Anon::Name(&ANONYMOUS)), basic: Some(Anon::Name(&ANONYMOUS)) },
    // Consequence 7: different anonymous consumers; the last plugin that falls back decides.
    Mode { name: "or_or_two_anonymous", key: Some(Anon::Id(&ANONYMOUS)), basic: Some(Anon::Name(&GUEST)) },
    Mode { name: "or_and", key: Some(Anon::Name(&ANONYMOUS)), basic: None },
    Mode { name: "and_or", key: None, basic: Some(Anon::Id(&GUEST)) },
];

impl Mode {
    pub fn key_plugin(&self) -> Value {
        key_auth(self.key.map_or(json!({}), |a| json!({ "anonymous": a.reference() })))
    }

    pub fn basic_plugin(&self) -> Value {
        basic_auth(self.basic.map_or(json!({}), |a| json!({ "anonymous": a.reference() })))
    }

    pub fn single(&self) -> String {
        format!("/m/{}/single", self.name)
    }

    pub fn split(&self) -> String {
        format!("/m/{}/split", self.name)
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Key {
    None,
    Alice,
    Wrong,
}

#[derive(Clone, Copy, Debug)]
pub enum Basic {
    None,
    Alice,
    Bob,
    Wrong,
}

pub const COMBOS: [(Key, Basic); 10] = [
    (Key::None, Basic::None),
    (Key::Alice, Basic::None),
    (Key::Wrong, Basic::None),
    (Key::None, Basic::Alice),
    (Key::None, Basic::Wrong),
    (Key::Alice, Basic::Bob),
    (Key::Alice, Basic::Alice),
    (Key::Alice, Basic::Wrong),
    (Key::Wrong, Basic::Alice),
    (Key::Wrong, Basic::Wrong),
];

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Rejected { status: u16, message: String, challenge: String },
    Forwarded(Vec<(&'static str, Vec<String>)>),
}

pub type Attempt = Result<(&'static Consumer, String), (&'static str, &'static str)>;

pub fn try_key(k: Key) -> Attempt {
    match k {
        Key::None => Err(("No API key found in request", "Key")),
        Key::Wrong => Err(("Unauthorized", "Key")),
        Key::Alice => Ok((&ALICE, ALICE.key_id().to_string())),
    }
}

pub fn try_basic(b: Basic) -> Attempt {
    match b {
        Basic::None | Basic::Wrong => Err(("Unauthorized", "Basic realm=\"service\"")),
        Basic::Alice => Ok((&ALICE, ALICE.basic_user().to_string())),
        Basic::Bob => Ok((&BOB, BOB.basic_user().to_string())),
    }
}

/// BEHAVIOUR.md §B3, written down independently of the filter.
pub fn model(mode: &Mode, k: Key, b: Basic) -> Outcome {
    let mut identity = Seen::nobody();
    let plugins: [(Option<Anon>, Attempt); 2] = [(mode.key, try_key(k)), (mode.basic, try_basic(b))];
    for (anonymous, attempt) in plugins {
        // OR mode skips when a credential (not merely a consumer) is established.
        if anonymous.is_some() && identity.credential.is_some() {
            continue;
        }
        match (attempt, anonymous) {
            (Ok((consumer, credential)), _) => identity = Seen::authenticated(consumer, &credential),
            (Err(_), Some(anon)) => identity = Seen::anonymous(anon.consumer()),
            (Err((message, challenge)), None) => {
                return Outcome::Rejected { status: 401, message: message.into(), challenge: challenge.into() }
            }
        }
    }
    Outcome::Forwarded(identity.expected())
}

pub fn observe(r: &Response) -> Outcome {
    match r.upstream() {
        Some(up) => {
            assert_eq!(r.status, 200, "forwarded request");
            Outcome::Forwarded(seen(&up))
        }
        None => {
            assert_eq!(r.header("content-type"), Some(JSON_UTF8), "error content type: {}", r.text());
            Outcome::Rejected {
                status: r.status,
                message: r.message(),
                challenge: r.header("www-authenticate").unwrap_or_default().to_string(),
            }
        }
    }
}

pub fn matrix_request(path: &str, k: Key, b: Basic, forged: &[(&str, &str)]) -> Request {
    let mut req = Request::get(&format!("{path}?q=1")).headers(forged);
    req = match k {
        Key::None => req,
        Key::Alice => req.header("apikey", ALICE.key()),
        Key::Wrong => req.header("apikey", "not-a-key"),
    };
    match b {
        Basic::None => req,
        Basic::Alice => req.basic(ALICE.basic_user(), ALICE.basic_password()),
        Basic::Bob => req.basic(BOB.basic_user(), BOB.basic_password()),
        Basic::Wrong => req.basic(ALICE.basic_user(), "wrong-password"),
    }
}

/// Every combination of `mode` on `port`: one instance against the model, two chained instances
/// against one; every request also carries forged identity headers (`SPOOFED`).
pub fn and_or_matrix(port: u16, mode: &Mode) {
    for (k, b) in COMBOS {
        let expected = model(mode, k, b);
        let single = observe(&matrix_request(&mode.single(), k, b, &SPOOFED).send(port));
        let split = observe(&matrix_request(&mode.split(), k, b, &SPOOFED).send(port));
        assert_eq!(single, expected, "{}: key {k:?}, basic {b:?}, one instance (left) vs BEHAVIOUR.md §B3", mode.name);
        assert_eq!(split, single, "{}: key {k:?}, basic {b:?}, two instances (left) vs one instance", mode.name);
    }
}
