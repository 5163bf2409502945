//! Shared by the test binaries: named cases that all run and are reported together.

#![allow(dead_code)]

pub mod and_or;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use consumer_auth_e2e::fixtures::{Consumer, IDENTITY_HEADERS};
use consumer_auth_e2e::http::Upstream;

/// Runs named cases against one Envoy; every case runs, failures are listed at the end.
pub struct Cases {
    failed: Vec<String>,
    passed: usize,
}

impl Cases {
    pub fn new() -> Cases {
        Cases { failed: Vec::new(), passed: 0 }
    }

    pub fn run(&mut self, name: &str, case: impl FnOnce()) {
        let start = Instant::now();
        match catch_unwind(AssertUnwindSafe(case)) {
            Ok(()) => {
                self.passed += 1;
                eprintln!("case {name} ... ok ({} ms)", start.elapsed().as_millis());
            }
            Err(_) => {
                eprintln!("case {name} ... FAILED");
                self.failed.push(name.to_string());
            }
        }
    }

    pub fn finish(self) {
        eprintln!("{} cases passed, {} failed", self.passed, self.failed.len());
        assert!(self.failed.is_empty(), "failed cases:\n  {}", self.failed.join("\n  "));
    }
}

/// Who the upstream must see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub consumer: Option<&'static Consumer>,
    /// `None` with a consumer: the anonymous consumer.
    pub credential: Option<String>,
    /// `X-Consumer-Groups`, if set.
    pub groups: Option<String>,
}

impl Seen {
    pub fn nobody() -> Seen {
        Seen { consumer: None, credential: None, groups: None }
    }

    pub fn authenticated(consumer: &'static Consumer, credential: &str) -> Seen {
        Seen { consumer: Some(consumer), credential: Some(credential.to_string()), groups: None }
    }

    pub fn anonymous(consumer: &'static Consumer) -> Seen {
        Seen { consumer: Some(consumer), credential: None, groups: None }
    }

    pub fn groups(mut self, groups: &str) -> Seen {
        self.groups = Some(groups.to_string());
        self
    }

    /// Every identity header, with all its values, as the upstream must see it.
    pub fn expected(&self) -> Vec<(&'static str, Vec<String>)> {
        IDENTITY_HEADERS
            .iter()
            .map(|&name| {
                let value: Option<String> = match (name, self.consumer) {
                    (_, None) => None,
                    ("x-consumer-id", Some(c)) => Some(c.id.into()),
                    ("x-consumer-custom-id", Some(c)) => c.custom_id.map(Into::into),
                    ("x-consumer-username", Some(c)) => Some(c.username.into()),
                    ("x-credential-identifier", _) => self.credential.clone(),
                    ("x-anonymous-consumer", _) => self.credential.is_none().then(|| "true".into()),
                    ("x-consumer-groups", _) => self.groups.clone(),
                    _ => None,
                };
                (name, value.into_iter().collect())
            })
            .collect()
    }
}

/// The identity headers the upstream saw, with all their values.
pub fn seen(up: &Upstream) -> Vec<(&'static str, Vec<String>)> {
    IDENTITY_HEADERS.iter().map(|&name| (name, up.all(name).into_iter().map(String::from).collect())).collect()
}

/// The upstream saw exactly `expected` (every identity header, every value; nothing forged).
pub fn assert_seen(up: &Upstream, expected: &Seen) {
    assert_eq!(seen(up), expected.expected(), "identity headers upstream (left: seen, right: expected)");
}
