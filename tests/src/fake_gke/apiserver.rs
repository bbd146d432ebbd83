//! The kube-apiserver's HTTP side: one fallback handler that records the request, checks the
//! bearer token, injects faults, routes it and answers with the API's JSON.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::options::{Call, requested_dry_run};
use super::routes::{self, Route};
use super::state::State;
use super::status::KubeError;
use super::writes::Reply;
use super::{KubeRequest, lock, logs, reads, writes};
use crate::fake_http::Query;

/// Bodies larger than this are refused (nothing a client sends comes close).
const MAX_BODY: usize = 16 << 20;

type Shared = Arc<Mutex<State>>;

/// The apiserver's router: every request goes to [`handle`].
pub(crate) fn router(state: Shared) -> Router {
    Router::new().fallback(handle).with_state(state)
}

/// The bearer token of an `Authorization` header.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

/// Handles any request.
async fn handle(AxumState(state): AxumState<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.unwrap_or_default();
    let (method, path) = (parts.method.as_str(), parts.uri.path());
    let query = Query::parse(&parts.uri);
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let token = bearer(&parts.headers);
    let json: Option<Value> = serde_json::from_slice(&bytes).ok();
    let (index, latency) = {
        let mut state = lock(&state);
        if let Some(token) = &token {
            state.saw_token(token);
        }
        state.requests.push(KubeRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            query: parts.uri.query().unwrap_or_default().to_owned(),
            content_type: content_type.clone(),
            dry_run: requested_dry_run(method, &query, !bytes.iter().all(u8::is_ascii_whitespace), json.as_ref()),
            body: json,
            status: 0,
        });
        (state.requests.len() - 1, state.latency)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let call = Call { query: &query, content_type: content_type.as_deref(), body: &bytes };
    let result = {
        let mut state = lock(&state);
        let result = serve(&mut state, &parts.method, path, token.as_deref(), &call);
        let status = result.as_ref().map_or_else(|e| e.code, |r| r.status);
        if let Some(request) = state.requests.get_mut(index) {
            request.status = status;
        }
        result
    };
    respond(result)
}

/// Authenticates, injects a queued failure, routes and processes a request.
fn serve(
    state: &mut State,
    method: &Method,
    path: &str,
    token: Option<&str>,
    call: &Call<'_>,
) -> Result<Reply, KubeError> {
    if !token.is_some_and(|t| state.tokens.contains(t)) {
        return Err(KubeError::unauthorized());
    }
    if let Some(status) = state.take_failure(method.as_str(), path) {
        return Err(KubeError::injected(status));
    }
    let route = routes::parse(path).ok_or_else(KubeError::no_route)?;
    if !route.allows(method.as_str()) {
        let (resource, name) = match &route {
            Route::Collection { resource, .. } => (Some(*resource), ""),
            Route::Object { resource, name, .. } => (Some(*resource), name.as_str()),
            Route::Eviction { name, .. } | Route::Log { name, .. } => {
                (Some(super::routes::Resource::Pod), name.as_str())
            }
            Route::Version => (None, ""),
        };
        return Err(KubeError::method_not_allowed(resource, name));
    }
    let ok = |body: Value| Reply { status: 200, body };
    match (method.as_str(), route) {
        (_, Route::Version) => Ok(ok(reads::version())),
        ("GET", Route::Collection { resource, namespace }) => {
            reads::list(state, resource, namespace.as_deref(), call.query).map(ok)
        }
        (_, Route::Collection { namespace, .. }) => {
            writes::create(state, namespace.as_deref().unwrap_or_default(), call)
        }
        ("GET", Route::Object { resource, namespace, name }) => reads::get(state, resource, &namespace, &name).map(ok),
        ("PATCH", Route::Object { resource, namespace, name }) => {
            writes::patch(state, resource, &namespace, &name, call)
        }
        (_, Route::Object { resource, namespace, name }) => writes::delete(state, resource, &namespace, &name, call),
        (_, Route::Eviction { namespace, name }) => writes::evict(state, &namespace, &name, call),
        (_, Route::Log { namespace, name }) => logs::read(state, &namespace, &name, call.query).map(ok),
    }
}

/// The HTTP response: the JSON body, the `Status` of an error (with `Retry-After` when it has
/// one); a bare string (a log: no API object is one) as `text/plain`.
fn respond(result: Result<Reply, KubeError>) -> Response {
    let (status, body, retry_after) = match result {
        Ok(reply) => (reply.status, reply.body, None),
        Err(error) => (error.code, error.body(), error.retry_after),
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Value::String(text) = body {
        return (status, [(header::CONTENT_TYPE, "text/plain")], text).into_response();
    }
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(seconds) = retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
