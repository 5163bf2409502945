//! The one handler behind every generated route, Kong's answers for each method and scope.

use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value as Json_};

use super::request::{encode_offset, parse_body, parse_list_query, path_segment, ListParams};
use super::Scope;
use crate::entity::validate::{record_json, validate, Mode, Source};
use crate::entity::{is_uuid, Entity, Record, Value, CONSUMERS};
use crate::error::ApiError;
use crate::store::{ListQuery, Lookup, Write};
use crate::AppState;

/// The version of Kong's Admin API this service answers as (`GET /`'s `version`): decK picks
/// its file format from it (3.x: `_format_version: "3.0"`).
pub const KONG_API_VERSION: &str = "3.9.0";

pub async fn root(State(state): State<AppState>, method: Method) -> Response {
    if method != Method::GET {
        return ApiError::MethodNotAllowed.into_response();
    }
    Json(json!({
        "version": KONG_API_VERSION,
        "tagline": "consumer-auth: Kong's Admin API for consumers and credentials",
        "service": crate::SERVICE_NAME,
        "service_version": env!("CARGO_PKG_VERSION"),
        // decK reads `database`: "off" would make it push a declarative config instead
        "configuration": { "database": state.store.engine() },
        "plugins": { "available_on_server": {}, "enabled_in_cluster": [] },
    }))
    .into_response()
}

/// `GET /status`: 200 when the database answers, 503 otherwise.
pub async fn status(State(state): State<AppState>) -> Response {
    match state.store.current_version().await {
        Ok(v) => Json(json!({ "database": { "reachable": true, "engine": state.store.engine(), "version": v } }))
            .into_response(),
        Err(e) => e.into_response(),
    }
}

pub async fn empty_list(method: Method, query: axum::extract::RawQuery) -> Response {
    if method != Method::GET {
        return ApiError::MethodNotAllowed.into_response();
    }
    match parse_list_query(query.0.as_deref()) {
        Ok(_) => Json(json!({ "data": [], "next": null })).into_response(),
        Err(e) => e.into_response(),
    }
}

pub async fn not_found() -> Response {
    ApiError::NotFound.into_response()
}

pub async fn entity(
    State(state): State<AppState>,
    request: Request,
    entity: &'static Entity,
    scope: Scope,
) -> Response {
    match handle(&state, request, entity, scope).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// What a request carries, read once.
struct Call {
    method: Method,
    params: Vec<String>,
    query: Option<String>,
    path: String,
    content_type: Option<String>,
    body: axum::body::Body,
}

async fn read_call(state: &AppState, request: Request) -> Result<Call, ApiError> {
    let (mut parts, body) = request.into_parts();
    let Path(params) =
        Path::<Vec<String>>::from_request_parts(&mut parts, state).await.map_err(|_| ApiError::NotFound)?;
    let params = params.iter().map(|p| path_segment(p)).collect::<Result<Vec<_>, _>>()?;
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    Ok(Call {
        method: parts.method,
        params,
        query: parts.uri.query().map(str::to_string),
        path: parts.uri.path().to_string(),
        content_type,
        body,
    })
}

impl Call {
    fn param(&self, i: usize) -> &str {
        self.params.get(i).map(String::as_str).unwrap_or_default()
    }

    async fn body(self, limit: usize) -> Result<(Map<String, Json_>, Source), ApiError> {
        let bytes = axum::body::to_bytes(self.body, limit).await.map_err(|_| ApiError::PayloadTooLarge)?;
        parse_body(self.content_type.as_deref(), &bytes)
    }
}

/// A path segment as a lookup: a UUID is an id, anything else the endpoint key (or, nested,
/// acls' group); an entity with no such key has nothing to find.
fn lookup(entity: &'static Entity, segment: &str, nested: bool, consumer: Option<&Record>) -> Result<Lookup, ApiError> {
    let field = if is_uuid(segment) { entity.field("id") } else { entity.path_key(nested) };
    let field = field.ok_or(ApiError::NotFound)?;
    let value = if field.name == "id" { segment.to_ascii_lowercase() } else { segment.to_string() };
    Ok(Lookup { field, value, consumer: consumer.map(|c| c.id().to_string()) })
}

async fn consumer_of(state: &AppState, segment: &str) -> Result<Record, ApiError> {
    let l = lookup(&CONSUMERS, segment, false, None)?;
    state.store.get(&CONSUMERS, &l).await?.ok_or(ApiError::NotFound)
}

async fn handle(
    state: &AppState,
    request: Request,
    entity: &'static Entity,
    scope: Scope,
) -> Result<Response, ApiError> {
    let call = read_call(state, request).await?;
    let nested = matches!(scope, Scope::NestedCollection | Scope::NestedItem);
    let owner = if nested { Some(consumer_of(state, call.param(0)).await?) } else { None };
    let item = match scope {
        Scope::Item | Scope::Owner => Some(call.param(0).to_string()),
        Scope::NestedItem => Some(call.param(1).to_string()),
        Scope::Collection | Scope::NestedCollection => None,
    };
    match (scope, call.method.clone(), item) {
        (Scope::Owner, Method::GET, Some(seg)) => {
            let l = lookup(entity, &seg, false, None)?;
            let credential = state.store.get(entity, &l).await?.ok_or(ApiError::NotFound)?;
            let cid = credential.consumer_id().unwrap_or_default().to_string();
            let consumer = consumer_of(state, &cid).await?;
            Ok(Json(record_json(&consumer)).into_response())
        }
        (Scope::Collection | Scope::NestedCollection, Method::GET, None) => {
            let params = parse_list_query(call.query.as_deref())?;
            if params.custom_id.is_some() && entity.field("custom_id").is_none() {
                return Ok(list_page(&call.path, &params, Vec::new()));
            }
            let q = ListQuery {
                after: params.after.clone(),
                size: params.size,
                consumer: owner.as_ref().map(|c| c.id().to_string()),
                custom_id: params.custom_id.clone(),
                tags: params.tags.clone(),
                tags_all: params.tags_all,
            };
            let rows = state.store.list(entity, &q).await?;
            Ok(list_page(&call.path, &params, rows))
        }
        (Scope::Collection | Scope::NestedCollection, Method::POST, None) => {
            let fixed = owner_fixed(owner.as_ref());
            let (body, source) = call.body(state.body_limit).await?;
            let record = validate(entity, &body, source, Mode::Create, None, &fixed)?;
            let stored = state.store.write(entity, None, move |_| Ok(Write::Insert(record))).await?;
            Ok((StatusCode::CREATED, Json(stored.map(|r| record_json(&r)))).into_response())
        }
        (Scope::Item | Scope::NestedItem, Method::GET, Some(seg)) => {
            let l = lookup(entity, &seg, nested, owner.as_ref())?;
            let found = state.store.get(entity, &l).await?.ok_or(ApiError::NotFound)?;
            Ok(Json(record_json(&found)).into_response())
        }
        (Scope::Item | Scope::NestedItem, Method::PUT, Some(seg)) => {
            let l = lookup(entity, &seg, nested, owner.as_ref())?;
            let mut fixed = owner_fixed(owner.as_ref());
            fixed.push((l.field.name, Value::Text(l.value.clone())));
            let (body, source) = call.body(state.body_limit).await?;
            put(state, entity, &l, &body, source, &fixed).await
        }
        (Scope::Item | Scope::NestedItem, Method::PATCH, Some(seg)) => {
            let l = lookup(entity, &seg, nested, owner.as_ref())?;
            let (body, source) = call.body(state.body_limit).await?;
            let stored = state
                .store
                .write(entity, Some(&l), move |current| {
                    let current = current.ok_or(ApiError::NotFound)?;
                    // the id is the path's: a body cannot move the row to another primary key
                    let id = [("id", current.get("id").clone())];
                    Ok(Write::Update(validate(entity, &body, source, Mode::Patch, Some(&current), &id)?))
                })
                .await?;
            Ok(Json(stored.map(|r| record_json(&r))).into_response())
        }
        (Scope::Item | Scope::NestedItem, Method::DELETE, Some(seg)) => {
            // Kong: a missing entity is a 204 at the top level, a 404 under a consumer.
            let l = match lookup(entity, &seg, nested, owner.as_ref()) {
                Ok(l) => l,
                Err(_) if !nested => return Ok(StatusCode::NO_CONTENT.into_response()),
                Err(e) => return Err(e),
            };
            state
                .store
                .write(entity, Some(&l), move |current| match current {
                    Some(c) => Ok(Write::Delete(c)),
                    None if nested => Err(ApiError::NotFound),
                    None => Ok(Write::Nothing),
                })
                .await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

fn owner_fixed(owner: Option<&Record>) -> Vec<(&'static str, Value)> {
    owner.map(|c| vec![("consumer", Value::Text(c.id().to_string()))]).unwrap_or_default()
}

/// PUT: replace the entity the path names, or create it (200 either way). Two writers creating
/// the same endpoint key at once: the loser's insert meets the winner's row, and one retry
/// replaces it as a sequential PUT would have.
async fn put(
    state: &AppState,
    entity: &'static Entity,
    l: &Lookup,
    body: &Map<String, Json_>,
    source: Source,
    fixed: &[(&'static str, Value)],
) -> Result<Response, ApiError> {
    let mut attempt = 0;
    loop {
        let body_c = body.clone();
        let fixed_c = fixed.to_vec();
        let result = state
            .store
            .write(entity, Some(l), move |current| {
                let record = validate(entity, &body_c, source, Mode::Replace, current.as_ref(), &fixed_c)?;
                Ok(Write::Put(record))
            })
            .await;
        match result {
            Err(ApiError::Unique(_)) if attempt == 0 && l.field.name != "id" => attempt += 1,
            other => return Ok(Json(other?.map(|r| record_json(&r))).into_response()),
        }
    }
}

/// A page of a list as Kong answers it: `data`, `next` (null on the last page) and `offset`.
fn list_page(path: &str, params: &ListParams, mut rows: Vec<Record>) -> Response {
    let more = rows.len() > params.size;
    rows.truncate(params.size);
    let data: Vec<Json_> = rows.iter().map(record_json).collect();
    let mut out = Map::new();
    out.insert("data".into(), Json_::Array(data));
    match rows.last().filter(|_| more) {
        Some(last) => {
            let offset = encode_offset(last.id());
            let mut next = form_urlencoded::Serializer::new(String::new());
            next.append_pair("offset", &offset);
            next.append_pair("size", &params.size.to_string());
            if let Some(t) = &params.tags_raw {
                next.append_pair("tags", t);
            }
            out.insert("next".into(), Json_::String(format!("{path}?{}", next.finish())));
            out.insert("offset".into(), Json_::String(offset));
        }
        None => {
            out.insert("next".into(), Json_::Null);
        }
    }
    Json(Json_::Object(out)).into_response()
}
