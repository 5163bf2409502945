//! One request through the configured plugins in Kong priority order, with Kong's logical
//! AND / OR (BEHAVIOUR.md §B3). Pure: it reads a [`Request`] and returns an [`Outcome`]; the host
//! glue applies it. A run that needs the body returns [`Outcome::NeedBody`] and is simply run
//! again, from the start, once the body is there.

use crate::config::{Config, ConsumerSource};
use crate::consumers::ConsumerLookup;
use crate::identity::{self, HeaderOp, Identity};
// Re-exported: these lived here before the plugin context and the proxy trait had files of their
// own.
pub use crate::plugins::context::{Ctx, Edits, Verdict};
pub use crate::plugins::rate_limiting::redis::{CounterCall, CounterReply};
use crate::plugins::{AuthPlugin, Configured, Halt};
pub use crate::proxy::{Host, LogLevel, SharedError};
use crate::request::Request;
use crate::response::{Reason, Rejection};
use crate::store::StoreReader;

/// What to do with the request.
#[derive(Debug)]
pub enum Outcome {
    Forward(Forward),
    Reject(Rejection),
    NeedBody,
    /// Ask the counters' front, then run again with its answer ([`run_with_counters`]).
    NeedCounters(Box<CounterCall>),
}

/// Send the request upstream with these changes.
#[derive(Debug, Default)]
pub struct Forward {
    pub header_ops: Vec<HeaderOp>,
    /// New `:path` (a query argument was hidden).
    pub path: Option<String>,
    /// New body (a body field was hidden).
    pub body: Option<Vec<u8>>,
    /// The identity to hand to later instances in the chain, if it changed.
    pub handoff: Option<Vec<u8>>,
    /// Headers to add to the response (rate-limiting's).
    pub response_headers: Vec<(String, String)>,
    /// What this instance decided, for metrics.
    pub verdict: Verdict,
    /// This instance was the first to see the request: every identity header in it came from
    /// the client.
    pub first_instance: bool,
}

/// Run every plugin of `config` on `req`. `handoff` is what an earlier instance of the filter
/// handed over for this request (the raw property value), if any.
pub fn run(config: &Config, req: &Request<'_>, handoff: Option<&[u8]>, host: &mut dyn Host) -> Outcome {
    run_with_counters(config, req, handoff, None, host)
}

/// [`run`] again for a request paused on [`Outcome::NeedCounters`], with the front's answer.
pub fn run_with_counters(
    config: &Config,
    req: &Request<'_>,
    handoff: Option<&[u8]>,
    counter_reply: Option<std::rc::Rc<CounterReply>>,
    host: &mut dyn Host,
) -> Outcome {
    let incoming = handoff.and_then(Identity::decode);
    // The first instance to see the request owns the identity headers and strips what the client
    // sent; a later one only updates what the earlier instances wrote.
    let strip_spoofed = incoming.is_none();
    // ... before any plugin runs: none of them sees the client's identity headers
    let client_view;
    let view = if strip_spoofed {
        client_view = req.without_identity_headers();
        &client_view
    } else {
        req
    };
    let (mut inline, mut store);
    let consumers: &mut dyn ConsumerLookup = match &config.consumers {
        ConsumerSource::Inline(index) => {
            inline = &**index;
            &mut inline
        }
        ConsumerSource::Store(name) => {
            store = StoreReader::new(name);
            &mut store
        }
    };
    let mut ctx = Ctx::new(view, consumers, incoming.unwrap_or_default(), host);
    ctx.counter_reply = counter_reply;

    for slot in &config.slots {
        let Some(entry) = slot.entry_for(ctx.identity.consumer.as_deref()) else {
            continue;
        };
        let result = match entry {
            Configured::Auth(plugin) => run_auth(plugin.as_ref(), &mut ctx),
            Configured::Other(plugin) => plugin.run(&mut ctx),
        };
        match result {
            Ok(()) => {}
            Err(Halt::NeedBody) => return Outcome::NeedBody,
            Err(Halt::NeedCounters(call)) => return Outcome::NeedCounters(call),
            Err(Halt::Reject(mut rejection)) => {
                // Headers an earlier plugin added to the response (rate-limiting's) are on every
                // response, a later plugin's refusal included, as in Kong.
                for (name, value) in std::mem::take(&mut ctx.edits.response_headers) {
                    if !rejection.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                        rejection.headers.push((name, value));
                    }
                }
                rejection.plugin = entry.name();
                rejection.consumer =
                    ctx.identity.consumer.as_ref().map(|c| c.username.clone().unwrap_or_else(|| c.id.clone()));
                return Outcome::Reject(*rejection);
            }
        }
    }

    let mut header_ops = Vec::new();
    for name in &ctx.edits.remove_headers {
        if req.has_header(name) {
            header_ops.push(HeaderOp::Remove(name.clone()));
        }
    }
    identity::header_ops(&ctx.identity, req.headers(), strip_spoofed, &mut header_ops);
    let handoff_out = if ctx.identity.is_empty() {
        None
    } else {
        Some(ctx.identity.encode()).filter(|encoded| Some(encoded.as_slice()) != handoff)
    };
    Outcome::Forward(Forward {
        header_ops,
        path: ctx.edits.path,
        body: ctx.edits.body,
        handoff: handoff_out,
        first_instance: strip_spoofed,
        response_headers: ctx.edits.response_headers,
        verdict: ctx.verdict,
    })
}

/// Kong's auth plugin wrapper: preflight, OR skip, authenticate, anonymous fallback.
fn run_auth(plugin: &dyn AuthPlugin, ctx: &mut Ctx<'_, '_>) -> Result<(), Halt> {
    let settings = plugin.settings();
    if !settings.run_on_preflight && ctx.req.method.eq_ignore_ascii_case("OPTIONS") {
        return Ok(());
    }
    // OR mode skips when a credential (not merely a consumer) is already established.
    if settings.anonymous.is_some() && ctx.identity.credential.is_some() {
        return Ok(());
    }
    match plugin.authenticate(ctx) {
        Ok(auth) => {
            ctx.identity = Identity::authenticated(auth.consumer, auth.credential, plugin.name());
            ctx.verdict = Verdict::Authenticated(plugin.name());
            Ok(())
        }
        Err(halt @ (Halt::NeedBody | Halt::NeedCounters(_))) => Err(halt),
        Err(Halt::Reject(rejection)) => {
            let Some(anonymous) = &settings.anonymous else {
                return Err(Halt::Reject(rejection));
            };
            match ctx.consumer_by_reference(anonymous)? {
                Some(consumer) => {
                    ctx.identity = Identity::anonymous(consumer);
                    ctx.verdict = Verdict::Anonymous(plugin.name());
                    Ok(())
                }
                None => Err(Halt::from(Rejection::kong(
                    500,
                    format!("anonymous consumer {anonymous} is configured but doesn't exist"),
                    Reason::AnonymousMissing,
                ))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Body, Header};

    struct FakeHost;
    impl Host for FakeHost {
        fn now_unix_seconds(&mut self) -> u64 {
            1_767_225_600
        }
        fn log(&mut self, _: LogLevel, _: &str) {}
    }

    fn config(json: &str) -> Config {
        Config::parse(json.as_bytes()).unwrap()
    }

    const DOC: &str = r#"{"consumers":[{"username":"alice","keyauth_credentials":[{"key":"k"}]},{"username":"anon"}],
        "plugins":[{"name":"key-auth","config":{"anonymous":"anon","key_in_body":true}}]}"#;

    #[test]
    fn a_vanished_anonymous_consumer_is_a_500() {
        // Possible once consumers come from a store that changed under the configuration.
        let mut c = config(DOC);
        c.consumers = ConsumerSource::Inline(Box::default());
        let headers: Vec<Header> = vec![];
        let req = Request::new("GET", "/", &headers, Body::Empty);
        match run(&c, &req, None, &mut FakeHost) {
            Outcome::Reject(r) => {
                assert_eq!(r.status, 500);
                assert_eq!(r.message(), "anonymous consumer anon is configured but doesn't exist");
                assert_eq!(r.plugin, "key-auth");
                assert_eq!(r.challenge, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_pending_body_is_asked_for_only_when_the_lookup_reaches_it() {
        let c = config(DOC);
        let with_key: Vec<Header> = vec![("apikey".into(), b"k".to_vec())];
        let req = Request::new("POST", "/", &with_key, Body::Pending);
        assert!(matches!(run(&c, &req, None, &mut FakeHost), Outcome::Forward(_)));
        let none: Vec<Header> = vec![("content-type".into(), b"application/x-www-form-urlencoded".to_vec())];
        let req = Request::new("POST", "/", &none, Body::Pending);
        assert!(matches!(run(&c, &req, None, &mut FakeHost), Outcome::NeedBody));
        let req = Request::new("POST", "/", &none, Body::Complete(b"apikey=k"));
        match run(&c, &req, None, &mut FakeHost) {
            Outcome::Forward(f) => {
                assert!(f.header_ops.contains(&HeaderOp::Set(identity::CONSUMER_USERNAME, "alice".into())))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_handoff_is_published_only_when_it_changes() {
        let c = config(DOC);
        let headers: Vec<Header> = vec![("apikey".into(), b"k".to_vec())];
        let req = Request::new("GET", "/", &headers, Body::Empty);
        let Outcome::Forward(first) = run(&c, &req, None, &mut FakeHost) else { panic!() };
        let handoff = first.handoff.expect("identity established");
        let Outcome::Forward(second) = run(&c, &req, Some(&handoff), &mut FakeHost) else { panic!() };
        assert_eq!(second.handoff, None, "unchanged identity is not written again");
        // nothing established: nothing published
        let empty = config(r#"{"plugins":[]}"#);
        let Outcome::Forward(f) = run(&empty, &req, None, &mut FakeHost) else { panic!() };
        assert_eq!(f.handoff, None);
    }
}
