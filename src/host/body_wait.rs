//! Requests paused for a body that may never come.
//!
//! A filter that reads the body pauses in the request-header callback. Envoy 1.35+ with
//! `allow_on_headers_stop_iteration: true` in the Wasm filter's `config` holds the headers and
//! calls the body callback for each chunk. Without it (older Envoy; Istio's WasmPlugin and Envoy
//! Gateway do not expose the field) Envoy turns that Pause into "stop everything": no body
//! callback ever comes and the request would hang until Envoy's stream timeout. The module cannot
//! read the setting; the only sign is that no body callback comes. So on Envoy, until a root
//! context has seen one body callback of a request it paused, each such request is registered
//! here and answered fail-closed from the root's tick once [`BODY_WAIT_NANOS`] have passed.
//! Once a body callback has come, the setting is known to be on for this root (the setting
//! belongs to the filter configuration, and a new configuration is a new root context).

use std::cell::{Cell, RefCell};

use super::Refusal;

/// How long a paused request may wait for its first body callback (until one has been seen).
pub const BODY_WAIT_NANOS: u64 = 2_000_000_000;
/// The root's tick while requests may be waiting: a waiting request is answered between
/// [`BODY_WAIT_NANOS`] and that plus one tick after its headers.
pub const TICK_MS: u32 = 1000;

/// The error line of a request answered because no body came.
pub const NO_BODY_LINE: &str = "consumer-auth: refusing request: no request body arrived within 2 s of the \
     headers; on Envoy a plugin that reads the body (key_in_body, validate_request_body) needs \
     `allow_on_headers_stop_iteration: true` in the Wasm filter's config (Envoy 1.35+)";

pub struct Waiting {
    pub context_id: u32,
    deadline: u64,
    /// The 500 to send, prepared while the request's headers were at hand.
    pub refusal: Refusal,
}

/// One per root context, shared with its request contexts.
#[derive(Default)]
pub struct BodyWaits {
    body_seen: Cell<bool>,
    waiting: RefCell<Vec<Waiting>>,
}

impl BodyWaits {
    /// Whether a body callback of a paused request has come on this root.
    pub fn body_seen(&self) -> bool {
        self.body_seen.get()
    }

    /// A body callback came for `context_id`, paused for its body.
    pub fn saw_body(&self, context_id: u32) {
        self.body_seen.set(true);
        self.forget(context_id);
    }

    pub fn wait(&self, context_id: u32, now: u64, refusal: Refusal) {
        self.waiting.borrow_mut().push(Waiting { context_id, deadline: now.saturating_add(BODY_WAIT_NANOS), refusal });
    }

    pub fn forget(&self, context_id: u32) {
        self.waiting.borrow_mut().retain(|w| w.context_id != context_id);
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.borrow().is_empty()
    }

    /// The requests whose wait is over at `now`, no longer registered.
    pub fn expired(&self, now: u64) -> Vec<Waiting> {
        let mut waiting = self.waiting.borrow_mut();
        let (expired, still): (Vec<Waiting>, Vec<Waiting>) = waiting.drain(..).partition(|w| w.deadline <= now);
        *waiting = still;
        expired
    }
}
