//! The Container API's `clusters.get`, with Google's JSON errors.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State as AxumState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use super::objects::KUBE_VERSION;
use super::state::State;
use super::{KubeRequest, UNREACHABLE_ENDPOINT, lock};
use crate::fake_http::percent_decode;

/// Bodies larger than this are ignored.
const MAX_BODY: usize = 1 << 20;

type Shared = Arc<Mutex<State>>;

/// The Container API's router: every request goes to [`handle`].
pub(crate) fn router(state: Shared) -> Router {
    Router::new().fallback(handle).with_state(state)
}

/// Google's canonical status name of an HTTP status.
fn google_status(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

/// Google's error body.
fn error(code: u16, message: &str) -> (u16, Value) {
    (code, json!({"error": {"code": code, "message": message, "status": google_status(code)}}))
}

/// Handles any request.
async fn handle(AxumState(state): AxumState<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.unwrap_or_default();
    let (method, path) = (parts.method.as_str(), parts.uri.path());
    let (status, body) = {
        let mut state = lock(&state);
        let (status, body) = answer(&mut state, method, path);
        state.container_requests.push(KubeRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            query: parts.uri.query().unwrap_or_default().to_owned(),
            content_type: parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned),
            body: serde_json::from_slice(&bytes).ok(),
            dry_run: false,
            status,
        });
        (status, body)
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

/// The status and body for a request.
fn answer(state: &mut State, method: &str, path: &str) -> (u16, Value) {
    if let Some(status) = state.take_failure(method, path) {
        let message = match status {
            429 => "Quota exceeded for quota metric 'Read requests' (injected by the fake).",
            503 => "The service is currently unavailable (injected by the fake).",
            _ => "Injected by the fake.",
        };
        return error(status, message);
    }
    let segments: Vec<String> = path.split('/').map(percent_decode).collect();
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let (project, location, cluster) = match s.as_slice() {
        ["", "v1", "projects", p, "locations" | "zones", l, "clusters", c] => (*p, *l, *c),
        _ => return error(404, &format!("The fake Container API has no route for {method} {path}.")),
    };
    if method != "GET" {
        return error(404, &format!("The fake Container API serves only clusters.get, not {method} {path}."));
    }
    let known = &state.cluster;
    if (project, location, cluster) != (known.project.as_str(), known.location.as_str(), known.name.as_str()) {
        return error(404, &format!("Not found: projects/{project}/locations/{location}/clusters/{cluster}."));
    }
    (200, cluster_json(state))
}

/// The `Cluster` resource.
fn cluster_json(state: &State) -> Value {
    let c = &state.cluster;
    let private = state.private_only;
    let (endpoint, private_endpoint) = if private {
        (UNREACHABLE_ENDPOINT, c.apiserver.as_str())
    } else {
        (c.apiserver.as_str(), UNREACHABLE_ENDPOINT)
    };
    let ca = base64::engine::general_purpose::STANDARD.encode(&c.ca_pem);
    let master_version = KUBE_VERSION.trim_start_matches('v');
    let mut private_config = json!({
        "enablePrivateNodes": true,
        "enablePrivateEndpoint": private,
        "privateEndpoint": private_endpoint,
    });
    if !private {
        private_config["publicEndpoint"] = json!(endpoint);
    }
    json!({
        "name": c.name,
        "location": c.location,
        "zone": c.location,
        "selfLink": format!(
            "https://container.googleapis.com/v1/projects/{}/locations/{}/clusters/{}",
            c.project, c.location, c.name
        ),
        "endpoint": endpoint,
        "status": "RUNNING",
        "currentMasterVersion": master_version,
        "currentNodeVersion": master_version,
        "masterAuth": {"clusterCaCertificate": ca},
        "privateClusterConfig": private_config,
    })
}
