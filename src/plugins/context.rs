//! What a plugin works on during one request ([`Ctx`]): the request as plugins see it, the
//! identity established so far, the edits asked for, and the consumers and the proxy behind one
//! interface each.

use std::cell::OnceCell;
use std::rc::Rc;

use super::rate_limiting::redis::CounterReply;
use super::Halt;
use crate::consumers::{
    BasicCredential, Consumer, ConsumerLookup, HmacCredential, JwtCredential, KeyCredential, NotLoaded,
};
use crate::identity::Identity;
use crate::proxy::{Counter, Host, LogLevel, SharedError};
use crate::request::{Body, ParsedBody, Request};
use crate::response::{Reason, Rejection};

/// Changes to the request that plugins asked for (hide_credentials).
#[derive(Debug, Default)]
pub struct Edits {
    pub(crate) remove_headers: Vec<String>,
    pub(crate) path: Option<String>,
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) response_headers: Vec<(String, String)>,
}

impl Edits {
    pub fn remove_header(&mut self, name: &str) {
        let lower = name.to_ascii_lowercase();
        if !self.remove_headers.contains(&lower) {
            self.remove_headers.push(lower);
        }
    }

    pub fn set_path(&mut self, path: String) {
        self.path = Some(path);
    }

    pub fn set_body(&mut self, body: Vec<u8>) {
        self.body = Some(body);
    }

    /// A header for the response sent back to the client (rate-limiting's).
    pub fn add_response_header(&mut self, name: String, value: String) {
        self.response_headers.push((name, value));
    }
}

/// The per-request state plugins work on.
pub struct Ctx<'r, 'a> {
    pub req: &'r Request<'a>,
    consumers: &'r mut dyn ConsumerLookup,
    pub identity: Identity,
    pub edits: Edits,
    host: &'r mut dyn Host,
    body: OnceCell<ParsedBody<'a>>,
    /// What this run decided so far, for metrics (set by the pipeline's auth wrapper).
    pub(crate) verdict: Verdict,
    /// The counter front's answer, when this run resumes a request paused for it
    /// (rate-limiting's `policy: redis`).
    pub counter_reply: Option<Rc<CounterReply>>,
}

impl<'r, 'a> Ctx<'r, 'a> {
    /// The context of one run: the request as plugins see it, where its consumers are looked up,
    /// and the identity an earlier instance handed over.
    pub fn new(
        req: &'r Request<'a>,
        consumers: &'r mut dyn ConsumerLookup,
        identity: Identity,
        host: &'r mut dyn Host,
    ) -> Self {
        Ctx {
            req,
            consumers,
            identity,
            edits: Edits::default(),
            host,
            body: OnceCell::new(),
            verdict: Verdict::default(),
            counter_reply: None,
        }
    }
}

impl<'a> Ctx<'_, 'a> {
    /// The request body parsed by its content type; [`Halt::NeedBody`] if it is not read yet.
    pub fn body(&self) -> Result<&ParsedBody<'a>, Halt> {
        let raw = match self.req.body {
            Body::Pending => return Err(Halt::NeedBody),
            Body::Empty => &[][..],
            Body::Complete(b) => b,
        };
        Ok(self.body.get_or_init(|| ParsedBody::parse(self.req.content_type(), raw)))
    }

    /// The raw request body (empty when the request has none); [`Halt::NeedBody`] if it is not
    /// read yet.
    pub fn raw_body(&self) -> Result<&'a [u8], Halt> {
        match self.req.body {
            Body::Pending => Err(Halt::NeedBody),
            Body::Empty => Ok(&[]),
            Body::Complete(b) => Ok(b),
        }
    }

    /// The proxy, for a plugin's own bookkeeping (rate-limiting's counters in shared data).
    pub fn host(&mut self) -> &mut dyn Host {
        &mut *self.host
    }

    pub fn now(&mut self) -> u64 {
        self.host.now_unix_seconds()
    }

    /// The request's HTTP protocol (see [`Host::request_protocol`]), asked of the host lazily.
    pub fn request_protocol(&mut self) -> Option<String> {
        self.host.request_protocol()
    }

    pub fn log(&mut self, level: LogLevel, message: &str) {
        self.host.log(level, message);
    }

    /// One more of an operator's counter (see [`Counter`]).
    pub fn count(&mut self, counter: Counter) {
        self.host.count(counter);
    }

    pub fn shared_get(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, SharedError> {
        self.host.shared_get(key)
    }

    pub fn shared_set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), SharedError> {
        self.host.shared_set(key, value, cas)
    }

    pub fn client_ip(&mut self) -> Option<String> {
        self.host.client_ip()
    }

    pub fn key_credential(&mut self, key: &[u8]) -> Result<Option<Rc<KeyCredential>>, Halt> {
        self.consumers.key(self.host, key).map_err(store_not_loaded)
    }

    pub fn basic_credential(&mut self, username: &[u8]) -> Result<Option<Rc<BasicCredential>>, Halt> {
        self.consumers.basic(self.host, username).map_err(store_not_loaded)
    }

    pub fn hmac_credential(&mut self, username: &str) -> Result<Option<Rc<HmacCredential>>, Halt> {
        self.consumers.hmac(self.host, username).map_err(store_not_loaded)
    }

    pub fn jwt_credential(&mut self, key: &str) -> Result<Option<Rc<JwtCredential>>, Halt> {
        self.consumers.jwt(self.host, key).map_err(store_not_loaded)
    }

    /// Kong's `load_consumer(ref, true)`: by id, then by username.
    pub fn consumer_by_reference(&mut self, reference: &str) -> Result<Option<Rc<Consumer>>, Halt> {
        self.consumers.by_reference(self.host, reference).map_err(store_not_loaded)
    }
}

/// Until a store's first generation is loaded, requests that need it get a 503.
fn store_not_loaded(e: NotLoaded) -> Halt {
    Halt::from(Rejection::kong(503, format!("consumer store '{}' is not loaded yet", e.store), Reason::StoreNotLoaded))
}

/// How a forwarded request was identified by this filter instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verdict {
    /// This instance established no identity (no auth plugin ran, preflight bypass, or an earlier
    /// instance did it).
    #[default]
    Passed,
    /// The named plugin authenticated a credential (the last one to do so in this instance).
    Authenticated(&'static str),
    /// The named plugin fell back to the anonymous consumer.
    Anonymous(&'static str),
}
