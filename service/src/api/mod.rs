//! The Admin API's routes, generated from the entity table (Kong's `generate_endpoints`): for
//! each entity `/{collection}` and `/{collection}/{id}`, and for each credential
//! `/consumers/{c}/{nested}[/{id}]` and `/{collection}/{id}/consumer`. One handler serves them
//! all ([`handlers`]); the lists decK reads that this service has nothing for answer empty pages.

pub mod auth;
pub mod handlers;
pub mod request;

use axum::routing::any;
use axum::Router;

use crate::entity::{Entity, EMPTY_COLLECTIONS, TABLE};
use crate::AppState;

/// Where in the generated routes a request landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `/key-auths`
    Collection,
    /// `/key-auths/{id}`
    Item,
    /// `/consumers/{c}/key-auth`
    NestedCollection,
    /// `/consumers/{c}/key-auth/{id}`
    NestedItem,
    /// `/key-auths/{id}/consumer`
    Owner,
}

/// Every route of the Admin API (without state: `crate::app` adds it and the middleware; other
/// parts of the service `merge` their own routers next to it).
pub fn routes() -> Router<AppState> {
    let mut router = Router::new().route("/", any(handlers::root)).route("/status", any(handlers::status));
    for entity in TABLE {
        router = add(router, format!("/{}", entity.collection), entity, Scope::Collection);
        router = add(router, format!("/{}/{{a}}", entity.collection), entity, Scope::Item);
        if let Some(nested) = entity.nested {
            router = add(router, format!("/consumers/{{a}}/{nested}"), entity, Scope::NestedCollection);
            router = add(router, format!("/consumers/{{a}}/{nested}/{{b}}"), entity, Scope::NestedItem);
            router = add(router, format!("/{}/{{a}}/consumer", entity.collection), entity, Scope::Owner);
        }
    }
    for name in EMPTY_COLLECTIONS {
        router = router.route(&format!("/{name}"), any(handlers::empty_list));
    }
    router.fallback(handlers::not_found)
}

fn add(router: Router<AppState>, path: String, entity: &'static Entity, scope: Scope) -> Router<AppState> {
    let handler = move |state: axum::extract::State<AppState>, request: axum::extract::Request| {
        handlers::entity(state, request, entity, scope)
    };
    router.route(&path, any(handler))
}
