//! The HTTP side: one fallback handler that records the request, injects faults, routes it and
//! answers with Compute's JSON (or never, when stalled).

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::errors::ApiError;
use super::routes::{self, Mutation, Route};
use super::state::State;
use super::{RecordedRequest, lock, lock_current, mutations, operations, reads};
use crate::fake_http::Query;

/// Bodies larger than this are refused (nothing the client sends comes close).
const MAX_BODY: usize = 16 << 20;

type Shared = Arc<Mutex<State>>;

/// The fake's router: every request goes to [`handle`].
pub(crate) fn router(state: Shared) -> Router {
    Router::new().fallback(handle).with_state(state)
}

/// Handles any request.
async fn handle(AxumState(state): AxumState<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.unwrap_or_default();
    let body: Result<Option<Value>, String> = if bytes.iter().all(u8::is_ascii_whitespace) {
        Ok(None)
    } else {
        serde_json::from_slice(&bytes).map(Some).map_err(|e| e.to_string())
    };
    let (method, path) = (parts.method.as_str(), parts.uri.path());
    let route = routes::parse(method, path);
    let (rejected, lost, latency) = {
        let mut state = lock_current(&state);
        state.requests.push(RecordedRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            query: parts.uri.query().unwrap_or_default().to_owned(),
            body: body.clone().ok().flatten(),
        });
        let rejected = state.roll_reject();
        let lost = rejected.is_none() && matches!(route, Some(Route::Mutate(_))) && state.roll_lost();
        (rejected, lost, state.request_latency)
    };
    let result = match (rejected, route) {
        (Some(error), _) => Err(error),
        (None, None) => Err(ApiError::no_route(method, path)),
        (None, Some(route)) => match body {
            Err(detail) => Err(ApiError::parse_error(&detail)),
            Ok(body) => serve(&state, route, &Query::parse(&parts.uri), body.as_ref(), lost).await,
        },
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let (status, json) = match result {
        Ok(json) => (200, json),
        Err(error) => (error.status, error.body()),
    };
    *lock(&state).statuses.entry(status).or_default() += 1;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(json)).into_response()
}

/// Processes a recognised call.
async fn serve(
    state: &Mutex<State>,
    route: Route,
    query: &Query,
    body: Option<&Value>,
    lost: bool,
) -> Result<Value, ApiError> {
    match route {
        Route::Read(read) => reads::read(&lock_current(state), &read, query),
        Route::WaitOperation(path) => operations::wait(state, &path).await,
        Route::Mutate(mutation) => mutate(state, &mutation, query, body, lost).await,
    }
}

/// A mutation: through its gate if one is set, then applied; stalls or loses the answer when
/// told to.
async fn mutate(
    state: &Mutex<State>,
    mutation: &Mutation,
    query: &Query,
    body: Option<&Value>,
    lost: bool,
) -> Result<Value, ApiError> {
    let turn = lock(state).gate_turn(mutation.op_type());
    if let Some(turn) = &turn {
        turn.wait().await;
    }
    let outcome = mutations::apply(&mut lock_current(state), mutation, mutations::Call { query, body });
    drop(turn);
    let outcome = outcome?;
    if outcome.stall {
        std::future::pending::<()>().await;
    }
    if lost {
        return Err(ApiError::backend_error());
    }
    Ok(outcome.op)
}
