//! The endpoints (SPEC §6). Each authorises first (401/403), then parses
//! its query or body (400), then calls the same library functions as the
//! CLI (`crate::commands`, `crate::desk`, `crate::report`): reads on a
//! pooled connection, writes through the one writer.

use super::api::*;
use super::reply::{Reply, JSON};
use super::{AppState, Prepared};
use crate::commands;
use crate::desk::Desk;
use crate::input::reference_import::{import_reference, ReferenceRow};
use crate::records::customers::CustomerEvent;
use crate::records::lots::LotEvent;
use crate::records::policy::PolicyVersion;
use crate::records::supply::SupplyAttestation;
use crate::report::listings::Listing;
use crate::service::auth::Permission;
use crate::store::ledger::Ledger;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use chrono::NaiveDate;
use serde::de::DeserializeOwned;
use serde_json::json;
use std::sync::Arc;

type Shared = State<Arc<AppState>>;

/// Every route, with the request log, the metrics and the body limit.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi_json))
        .route("/metrics", get(metrics))
        .route("/v1/check", post(check))
        .route("/v1/reserve", post(reserve))
        .route("/v1/release", post(release))
        .route("/v1/report", get(report))
        .route("/v1/history", get(history))
        .route("/v1/holds", get(holds))
        .route("/v1/customers", get(customers))
        .route("/v1/lots", get(lots))
        .route("/v1/payments", get(payments))
        .route("/v1/sales", get(sales))
        .route("/v1/export", get(export))
        .route("/v1/digest", get(digest))
        .route("/v1/verify", get(verify))
        .route("/v1/policy", get(policy))
        .route("/v1/checkpoint", get(checkpoint))
        .route("/v1/imports/sales", post(import_sales))
        .route("/v1/imports/policy", post(import_policy))
        .route("/v1/imports/customers", post(import_customers))
        .route("/v1/imports/lots", post(import_lots))
        .route("/v1/imports/supply", post(import_supply))
        .route("/v1/imports/screening", post(import_screening))
        .route("/v1/policy/withdraw", post(withdraw))
        .route("/v1/screening/clear", post(screening_clear))
        .route("/v1/remit", post(remit))
        .route("/v1/close", post(close))
        .layer(DefaultBodyLimit::max(super::BODY_BYTES_MAX))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::observe::observe,
        ))
        .with_state(state)
}

/// Parses a query string as `T` (an unknown field is 400).
fn query<T: DeserializeOwned>(uri: &Uri) -> Result<T, Reply> {
    Query::<T>::try_from_uri(uri)
        .map(|Query(q)| q)
        .map_err(|why| Reply::error_json(400, &format!("query: {}", why.body_text())))
}

/// Parses a JSON body as `T` (an unknown field is 400).
fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Reply> {
    serde_json::from_slice(bytes).map_err(|why| Reply::error_json(400, &format!("body: {why}")))
}

/// A library error as the CLI would end with it.
fn failed(err: crate::Error) -> Reply {
    Reply::from_error(&err)
}

/// `json` (the default) or another of `allowed`, else 400.
fn format_of(format: Option<&str>, allowed: &[&'static str]) -> Result<&'static str, Reply> {
    let wanted = format.unwrap_or("json").to_ascii_lowercase();
    allowed
        .iter()
        .copied()
        .find(|f| *f == wanted)
        .ok_or_else(|| {
            Reply::error_json(
                400,
                &format!("format {wanted}: one of {}", allowed.join(", ")),
            )
        })
}

/// Runs a fallible read: its reply, or the reply of what went wrong.
fn settle(outcome: Result<Reply, Reply>) -> Reply {
    outcome.unwrap_or_else(|reply| reply)
}

/// A JSON body that may carry the client's `as_of`.
pub trait WithAsOf {
    /// The `as_of` field.
    fn as_of(&self) -> Option<&str>;
}

macro_rules! with_as_of {
    ($($body:ty),*) => {$(
        impl WithAsOf for $body {
            fn as_of(&self) -> Option<&str> {
                self.as_of.as_deref()
            }
        }
    )*};
}
with_as_of!(
    ReserveBody,
    ReleaseBody,
    RemitBody,
    CloseBody,
    WithdrawBody,
    ClearBody
);

/// What a JSON-body write does: the CLI's JSON and exit code.
type Run<B> = fn(&mut Ledger, B, NaiveDate) -> crate::Result<(u8, serde_json::Value)>;

/// A write whose body is JSON: authorise, parse, queue, answer.
async fn json_write<B>(
    state: Arc<AppState>,
    headers: HeaderMap,
    uri: Uri,
    bytes: Bytes,
    permission: Permission,
    run: Run<B>,
) -> Response
where
    B: DeserializeOwned + WithAsOf + Send + 'static,
{
    let sha = super::request_sha256("POST", &uri, &bytes);
    let trust = state.trust_client_as_of;
    super::write(state, &headers, sha, permission, move || {
        let b: B = body(&bytes)?;
        let as_of = super::as_of(trust, b.as_of())?;
        Ok(Prepared {
            as_of,
            alone: false,
            work: Box::new(move |ledger, as_of| match run(ledger, b, as_of) {
                Ok((code, value)) => Reply::of_code(code, &value),
                Err(err) => failed(err),
            }),
        })
    })
    .await
}

mod desk;
mod imports;
mod officer;
mod operations;
mod reads;

pub use desk::*;
pub use imports::*;
pub use officer::*;
pub use operations::*;
pub use reads::*;
