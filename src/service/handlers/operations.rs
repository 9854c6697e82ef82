//! Operations endpoints without a token: health, the OpenAPI document, metrics.

use super::*;

#[utoipa::path(get, path = "/healthz", responses(
    (status = 200, description = "The server answers and reads the ledger", body = Health),
    (status = 503, description = "The ledger cannot be read", body = ErrorBody)))]
/// `{"ok": true, "entries": N}`; no token.
pub async fn healthz(State(state): Shared) -> Response {
    crate::service::read_open(state, |desk: &mut Desk| match desk.ledger().head() {
        Ok(head) => Reply::json(200, &json!({"ok": true, "entries": head.entries})),
        Err(err) => failed(err),
    })
    .await
}

#[utoipa::path(get, path = "/openapi.json", responses(
    (status = 200, description = "This document, OpenAPI 3.1", content_type = "application/json")))]
/// The OpenAPI document, generated from the code; no token.
pub async fn openapi_json(State(state): Shared) -> Response {
    crate::service::respond(Reply::text(JSON, state.openapi.clone()), None)
}

#[utoipa::path(get, path = "/metrics", responses(
    (status = 200, description = "Prometheus text", content_type = "text/plain")))]
/// Requests by route and status, latency histograms, entries appended; no token.
pub async fn metrics(State(state): Shared) -> Response {
    let text = state.metrics.render(&state.counters);
    crate::service::respond(Reply::text("text/plain; version=0.0.4", text), None)
}
