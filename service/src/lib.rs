//! consumer-auth's service: Kong's Admin API for consumers and their credentials (key-auth,
//! basic-auth, hmac-auth, jwt, acls), stored in SQLite or PostgreSQL, every change recorded in a
//! versioned change log that the proxies can follow. See docs/ADMIN_API.md.
//!
//! Layout: [`entity`] describes each entity once (its table drives routes, validation, SQL and
//! the mapping to the filter's consumer document); [`api`] are the routes and their handler;
//! [`store`] the two databases behind one set of operations; [`serve`] runs it.

pub mod api;
pub mod entity;
pub mod error;
pub mod import;
pub mod serve;
pub mod store;

use std::sync::Arc;

use axum::Router;

pub use serve::{serve, ServeConfig};
pub use store::{Store, StoreOptions};

/// The service's name, in `GET /`.
pub const SERVICE_NAME: &str = "consumer-auth";

/// Kong's default for the Admin API (`admin_listen`), loopback only.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8001";
/// A SQLite file in the working directory, created if missing.
pub const DEFAULT_DATABASE: &str = "sqlite://consumer-auth.db";
/// The largest request body read (a larger one is a 413).
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub body_limit: usize,
    /// `--admin-token`: required in `Kong-Admin-Token` when set. Never logged.
    pub admin_token: Option<Arc<str>>,
}

/// The Admin API with its state and middleware. Other routers (a change feed, a rate-limit
/// front) can be merged into [`api::routes`] before the state is given.
pub fn app(state: AppState) -> Router {
    let routes = api::routes()
        .layer(axum::middleware::from_fn_with_state(state.clone(), api::auth::require_token))
        .with_state(state);
    // Kong answers `/consumers/` as `/consumers` (the seed's curl has the slash): drop one
    // trailing slash before routing.
    Router::new().fallback_service(tower::util::MapRequest::new(routes, strip_trailing_slash))
}

fn strip_trailing_slash(mut request: axum::extract::Request) -> axum::extract::Request {
    let path = request.uri().path();
    if path.len() > 1 && path.ends_with('/') {
        let trimmed = path.trim_end_matches('/');
        let rebuilt = match request.uri().query() {
            Some(q) => format!("{}?{q}", if trimmed.is_empty() { "/" } else { trimmed }),
            None => {
                if trimmed.is_empty() {
                    "/".to_string()
                } else {
                    trimmed.to_string()
                }
            }
        };
        if let Ok(uri) = rebuilt.parse() {
            *request.uri_mut() = uri;
        }
    }
    request
}
