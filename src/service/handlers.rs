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

#[utoipa::path(get, path = "/healthz", responses(
    (status = 200, description = "The server answers and reads the ledger", body = Health),
    (status = 503, description = "The ledger cannot be read", body = ErrorBody)))]
/// `{"ok": true, "entries": N}`; no token.
pub async fn healthz(State(state): Shared) -> Response {
    super::read_open(state, |desk: &mut Desk| match desk.ledger().head() {
        Ok(head) => Reply::json(200, &json!({"ok": true, "entries": head.entries})),
        Err(err) => failed(err),
    })
    .await
}

#[utoipa::path(get, path = "/openapi.json", responses(
    (status = 200, description = "This document, OpenAPI 3.1", content_type = "application/json")))]
/// The OpenAPI document, generated from the code; no token.
pub async fn openapi_json(State(state): Shared) -> Response {
    super::respond(Reply::text(JSON, state.openapi.clone()), None)
}

#[utoipa::path(get, path = "/metrics", responses(
    (status = 200, description = "Prometheus text", content_type = "text/plain")))]
/// Requests by route and status, latency histograms, entries appended; no token.
pub async fn metrics(State(state): Shared) -> Response {
    let text = state.metrics.render(&state.counters);
    super::respond(Reply::text("text/plain; version=0.0.4", text), None)
}

#[utoipa::path(post, path = "/v1/check", request_body = CheckBody, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Checked; a check writes nothing, so nothing is stored")),
    responses(
        (status = 200, description = "The answer, allowed or not", body = CheckAnswer),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 413, description = "Body over 256 MiB", body = ErrorBody), Denied))]
/// `check`: never writes; 200 whenever it answers.
pub async fn check(State(state): Shared, headers: HeaderMap, bytes: Bytes) -> Response {
    let trust = state.trust_client_as_of;
    let key = headers.get("idempotency-key").cloned();
    super::read(state, &headers, Permission::Desk, move |desk| {
        settle((|| {
            if let Some(key) = &key {
                super::idempotency_key(key)?;
            }
            let b: CheckBody = body(&bytes)?;
            let as_of = super::as_of(trust, b.as_of.as_deref())?;
            let request = commands::parse_request(
                &b.chip,
                &b.market,
                &b.units.to_string(),
                &b.date,
                b.customer.as_deref(),
                b.lot.as_deref(),
            )
            .map_err(failed)?;
            let answer = desk.check(&request, as_of).map_err(failed)?;
            Ok(Reply::json(200, &answer.to_json()))
        })())
    })
    .await
}

#[utoipa::path(post, path = "/v1/reserve", request_body = ReserveBody, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer")),
    responses(
        (status = 200, description = "Held (or already held)", body = CheckAnswer),
        (status = 409, description = "Refused by a rule", body = CheckAnswer),
        (status = 400, description = "Bad input", body = ErrorBody),
        Denied, PostRefused))]
/// `reserve`: a hold, durable before the answer.
pub async fn reserve(State(state): Shared, headers: HeaderMap, uri: Uri, bytes: Bytes) -> Response {
    let sha = super::request_sha256("POST", &uri, &bytes);
    let trust = state.trust_client_as_of;
    super::write(state, &headers, sha, Permission::Desk, move || {
        let b: ReserveBody = body(&bytes)?;
        let as_of = super::as_of(trust, b.as_of.as_deref())?;
        Ok(Prepared {
            as_of,
            alone: false,
            work: Box::new(move |ledger, as_of| {
                let answer = (|| {
                    let order = commands::parse_order_ref(&b.order)?;
                    let request = commands::parse_request(
                        &b.chip,
                        &b.market,
                        &b.units.to_string(),
                        &b.date,
                        b.customer.as_deref(),
                        b.lot.as_deref(),
                    )?;
                    let ttl = b.ttl_days.unwrap_or(crate::desk::TTL_DAYS_DEFAULT);
                    crate::desk::reserve(ledger, &order, &request, ttl, as_of)
                })();
                match answer {
                    Ok(answer) => Reply::of_code(u8::from(!answer.allowed), &answer.to_json()),
                    Err(err) => failed(err),
                }
            }),
        })
    })
    .await
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

#[utoipa::path(post, path = "/v1/release", request_body = ReleaseBody, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer")),
    responses(
        (status = 200, description = "Released, or already ended", body = ReleaseAnswer),
        (status = 400, description = "Bad input (an order never reserved)", body = ErrorBody),
        Denied, PostRefused))]
/// `release`: ends an order's active hold.
pub async fn release(State(state): Shared, headers: HeaderMap, uri: Uri, bytes: Bytes) -> Response {
    json_write::<ReleaseBody>(
        state,
        headers,
        uri,
        bytes,
        Permission::Desk,
        |ledger, b, as_of| {
            let order = commands::parse_order_ref(&b.order)?;
            let released = crate::desk::release(ledger, &order, as_of)?;
            Ok((0, commands::released_json(&released)))
        },
    )
    .await
}

#[utoipa::path(post, path = "/v1/remit", request_body = RemitBody, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer")),
    responses(
        (status = 200, description = "Recorded (or already recorded), or reversed", content_type = "application/json"),
        (status = 400, description = "Bad input", body = ErrorBody),
        Denied, PostRefused))]
/// `remit`, or with `reverse` `remit --reverse`.
pub async fn remit(State(state): Shared, headers: HeaderMap, uri: Uri, bytes: Bytes) -> Response {
    json_write::<RemitBody>(
        state,
        headers,
        uri,
        bytes,
        Permission::Officer,
        |ledger, b, as_of| {
            let missing = |what: &str| crate::Error::BadInput(what.to_string());
            if b.reverse {
                if b.amount.is_some() || b.paid_on.is_some() {
                    return Err(missing(
                        "a reversal takes period, reference and reason only",
                    ));
                }
                let reason = b.reason.ok_or_else(|| missing("reverse needs a reason"))?;
                let reversal =
                    commands::remit_reverse(ledger, &b.period, &b.reference, &reason, as_of)?;
                return Ok((0, reversal.to_json()));
            }
            if b.reason.is_some() {
                return Err(missing("reason goes with reverse"));
            }
            let (Some(amount), Some(paid_on)) = (b.amount, b.paid_on) else {
                return Err(missing(
                    "remit takes amount and paid_on, or reverse with reason",
                ));
            };
            let payment =
                commands::remit(ledger, &b.period, &amount, &paid_on, &b.reference, as_of)?;
            Ok((0, payment.to_json()))
        },
    )
    .await
}

#[utoipa::path(post, path = "/v1/close", request_body = CloseBody, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer")),
    responses(
        (status = 200, description = "Closed, or already closed", content_type = "application/json"),
        (status = 409, description = "The period is not over", body = ErrorBody),
        (status = 400, description = "Bad input", body = ErrorBody),
        Denied, PostRefused))]
/// `close`: seals a period that is over.
pub async fn close(State(state): Shared, headers: HeaderMap, uri: Uri, bytes: Bytes) -> Response {
    json_write::<CloseBody>(
        state,
        headers,
        uri,
        bytes,
        Permission::Officer,
        |ledger, b, as_of| {
            let closed = commands::close(ledger, &b.period, as_of)?;
            Ok((0, commands::closed_json(&closed)))
        },
    )
    .await
}

#[utoipa::path(post, path = "/v1/policy/withdraw", request_body = WithdrawBody, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer")),
    responses(
        (status = 200, description = "Withdrawn", content_type = "application/json"),
        (status = 400, description = "Bad input", body = ErrorBody),
        Denied, PostRefused))]
/// `policy withdraw`.
pub async fn withdraw(
    State(state): Shared,
    headers: HeaderMap,
    uri: Uri,
    bytes: Bytes,
) -> Response {
    json_write::<WithdrawBody>(
        state,
        headers,
        uri,
        bytes,
        Permission::Officer,
        |ledger, b, as_of| {
            let (value, _) =
                commands::withdraw(ledger, &b.chip, &b.effective_from, &b.reason, as_of)?;
            Ok((0, value))
        },
    )
    .await
}

#[utoipa::path(post, path = "/v1/screening/clear", request_body = ClearBody, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer")),
    responses(
        (status = 200, description = "Cleared, or already cleared", content_type = "application/json"),
        (status = 400, description = "Bad input", body = ErrorBody),
        Denied, PostRefused))]
/// `screening clear`.
pub async fn screening_clear(
    State(state): Shared,
    headers: HeaderMap,
    uri: Uri,
    bytes: Bytes,
) -> Response {
    json_write::<ClearBody>(
        state,
        headers,
        uri,
        bytes,
        Permission::Officer,
        |ledger, b, as_of| {
            let clearance = commands::screening_clear(
                ledger,
                &b.customer,
                &b.list,
                &b.entry,
                &b.reason,
                as_of,
            )?;
            Ok((0, commands::clearance_json(&clearance)))
        },
    )
    .await
}

/// The uploaded CSV's name: `X-File-Name`, 1–255 characters without
/// control characters, or `upload.csv`.
fn file_name(headers: &HeaderMap) -> Result<String, Reply> {
    let Some(value) = headers.get("x-file-name") else {
        return Ok("upload.csv".to_string());
    };
    value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|name| (1..=255).contains(&name.chars().count()))
        .filter(|name| !name.chars().any(char::is_control))
        .map(str::to_string)
        .ok_or_else(|| Reply::error_json(400, "X-File-Name: 1 to 255 visible characters"))
}

/// The body written to a private temporary file, for the import functions
/// (which read files, as the CLI gives them).
fn upload(bytes: &[u8]) -> crate::Result<(tempfile::TempDir, std::path::PathBuf)> {
    let io =
        |err: std::io::Error| crate::Error::Environment(format!("temporary upload file: {err}"));
    let dir = tempfile::tempdir().map_err(io)?;
    let path = dir.path().join("upload.csv");
    std::fs::write(&path, bytes).map_err(io)?;
    Ok((dir, path))
}

/// What an import does with its uploaded file.
type RunImport<Q> = fn(
    &mut Ledger,
    &std::path::Path,
    &str,
    &Q,
    NaiveDate,
) -> crate::Result<(u8, serde_json::Value)>;

/// An import of the body (CSV): authorise, parse the query, queue it to
/// run in a transaction of its own, answer.
async fn import_write<Q>(
    state: Arc<AppState>,
    headers: HeaderMap,
    uri: Uri,
    bytes: Bytes,
    permission: Permission,
    as_of_of: fn(&Q) -> Option<&str>,
    run: RunImport<Q>,
) -> Response
where
    Q: DeserializeOwned + Send + 'static,
{
    let sha = super::request_sha256("POST", &uri, &bytes);
    let trust = state.trust_client_as_of;
    let named = headers.clone();
    let prepare = move || {
        let q: Q = query(&uri)?;
        let label = file_name(&named)?;
        let as_of = super::as_of(trust, as_of_of(&q))?;
        Ok(Prepared {
            as_of,
            alone: true,
            work: Box::new(move |ledger, as_of| {
                let outcome =
                    upload(&bytes).and_then(|(_dir, path)| run(ledger, &path, &label, &q, as_of));
                match outcome {
                    Ok((code, value)) => Reply::of_code(code, &value),
                    Err(err) => failed(err),
                }
            }),
        })
    };
    super::write(state, &headers, sha, permission, prepare).await
}

/// A reference file's import (SPEC §4): any problem is bad input.
fn reference<T: ReferenceRow>(
    ledger: &mut Ledger,
    path: &std::path::Path,
    label: &str,
    _query: &AsOfQuery,
    as_of: NaiveDate,
) -> crate::Result<(u8, serde_json::Value)> {
    let summary = import_reference::<T>(ledger, path, label, as_of)?;
    Ok((commands::import_code(&summary, 2), summary.to_json()))
}

fn as_of_query(q: &AsOfQuery) -> Option<&str> {
    q.as_of.as_deref()
}

macro_rules! reference_import {
    ($name:ident, $path:literal, $row:ty, $what:literal) => {
        #[utoipa::path(post, path = $path, security(("bearer" = [])),
            request_body(content = String, content_type = "text/csv", description = $what),
            params(AsOfQuery,
                ("X-File-Name" = Option<String>, Header, description = "The file's name, as the answer and the batch entry record it"),
                ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer")),
            responses(
                (status = 200, description = "Imported (or nothing new)", body = ImportAnswer),
                (status = 400, description = "Bad input: the import's answer listing every problem, or an error", body = ImportOrError),
                                                Denied, PostRefused))]
        #[doc = concat!("Imports ", $what, ".")]
        pub async fn $name(State(state): Shared, headers: HeaderMap, uri: Uri, bytes: Bytes) -> Response {
            import_write::<AsOfQuery>(state, headers, uri, bytes, Permission::Officer, as_of_query, reference::<$row>).await
        }
    };
}

reference_import!(
    import_policy,
    "/v1/imports/policy",
    PolicyVersion,
    "policy versions (CSV)"
);
reference_import!(
    import_customers,
    "/v1/imports/customers",
    CustomerEvent,
    "customer events (CSV)"
);
reference_import!(
    import_lots,
    "/v1/imports/lots",
    LotEvent,
    "lot events (CSV)"
);
reference_import!(
    import_supply,
    "/v1/imports/supply",
    SupplyAttestation,
    "US supply attestations (CSV)"
);

#[utoipa::path(post, path = "/v1/imports/screening", security(("bearer" = [])),
    request_body(content = String, content_type = "text/csv", description = "A full restricted-party list snapshot (CSV)"),
    params(ScreeningImportQuery,
        ("X-File-Name" = Option<String>, Header, description = "The file's name"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer")),
    responses(
        (status = 200, description = "Recorded (or the identical snapshot again)", body = ImportAnswer),
        (status = 400, description = "Bad input", body = ImportOrError),
        Denied, PostRefused))]
/// `screening import`.
pub async fn import_screening(
    State(state): Shared,
    headers: HeaderMap,
    uri: Uri,
    bytes: Bytes,
) -> Response {
    import_write::<ScreeningImportQuery>(
        state,
        headers,
        uri,
        bytes,
        Permission::Officer,
        |q| q.as_of.as_deref(),
        |ledger, path, label, q, as_of| {
            let effective = q
                .effective
                .as_deref()
                .map(|d| commands::parse_date_option("effective", d))
                .transpose()?;
            let summary =
                crate::records::screening::import_snapshot(ledger, path, label, effective, as_of)?;
            Ok((commands::import_code(&summary, 2), summary.to_json()))
        },
    )
    .await
}

#[utoipa::path(post, path = "/v1/imports/sales", security(("bearer" = [])),
    request_body(content = String, content_type = "text/csv", description = "Sales and returns (CSV)"),
    params(SalesImportQuery,
        ("X-File-Name" = Option<String>, Header, description = "The file's name"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer")),
    responses(
        (status = 200, description = "Imported", body = ImportAnswer),
        (status = 409, description = "Rows refused by a rule (atomic: nothing written; partial: the rest written)", body = ImportAnswer),
        (status = 400, description = "Malformed rows or bad options", body = ImportOrError),
        Denied, PostRefused))]
/// `import` (sales); with `partial` the answer adds `rejects_csv`.
pub async fn import_sales(
    State(state): Shared,
    headers: HeaderMap,
    uri: Uri,
    bytes: Bytes,
) -> Response {
    import_write::<SalesImportQuery>(
        state,
        headers,
        uri,
        bytes,
        Permission::SalesImport,
        |q| q.as_of.as_deref(),
        |ledger, path, label, q, as_of| {
            let rejects = path.with_file_name("rejects.csv");
            let options = commands::sales_import_options(
                as_of,
                q.dry_run,
                q.partial,
                q.accept_violations,
                q.late,
                q.reason.as_deref(),
                q.partial.then(|| rejects.clone()),
            )?;
            let outcome =
                crate::input::sales_import::import_sales(ledger, path, label, &options, None)?;
            let mut value = outcome.summary.to_json();
            if q.partial {
                value["rejects_csv"] = json!(std::fs::read_to_string(&rejects).unwrap_or_default());
            }
            Ok((commands::sales_import_code(&outcome, q.partial), value))
        },
    )
    .await
}

/// A read needing `permission` whose query is `Q`: authorise, parse, run.
async fn query_read<Q>(
    state: Arc<AppState>,
    headers: HeaderMap,
    uri: Uri,
    run: fn(&mut Desk, Q, bool) -> Result<Reply, Reply>,
) -> Response
where
    Q: DeserializeOwned + Send + 'static,
{
    let trust = state.trust_client_as_of;
    super::read(state, &headers, Permission::Read, move |desk| {
        settle(query::<Q>(&uri).and_then(|q| run(desk, q, trust)))
    })
    .await
}

/// A listing in JSON or CSV.
fn listing(listing: crate::Result<Listing>, format: Option<&str>) -> Result<Reply, Reply> {
    let format = format_of(format, &["json", "csv"])?;
    let listing = listing.map_err(failed)?;
    if format == "csv" {
        return Ok(Reply::text("text/csv", listing.to_csv().map_err(failed)?));
    }
    Ok(Reply::json(200, &listing.to_json()))
}

/// The read responses.
macro_rules! read_path {
    ($name:ident, $path:literal, $params:ty, $what:literal) => {
        #[utoipa::path(get, path = $path, security(("bearer" = [])), params($params),
            responses(
                (status = 200, description = $what, content_type = "application/json"),
                (status = 400, description = "Bad input", body = ErrorBody),
                                (status = 500, description = "The ledger's schema was altered", body = ErrorBody),
                Denied))]
        #[doc = concat!("`", $path, "`: ", $what, ".")]
        pub async fn $name(State(state): Shared, headers: HeaderMap, uri: Uri) -> Response {
            query_read::<$params>(state, headers, uri, reads::$name).await
        }
    };
}

read_path!(
    report,
    "/v1/report",
    ReportQuery,
    "The period report (json, csv or html)"
);
read_path!(
    history,
    "/v1/history",
    HistoryQuery,
    "One row per period and chip (json, csv or html)"
);
read_path!(holds, "/v1/holds", HoldsQuery, "The holds listing");
read_path!(
    customers,
    "/v1/customers",
    CustomersQuery,
    "The customers listing"
);
read_path!(lots, "/v1/lots", LotsQuery, "The lots listing");
read_path!(
    payments,
    "/v1/payments",
    PaymentsQuery,
    "The payments listing"
);
read_path!(
    sales,
    "/v1/sales",
    SalesQuery,
    "The sales listing of a period"
);
read_path!(
    digest,
    "/v1/digest",
    AsOfQuery,
    "The stored chain head, unproven"
);
read_path!(
    verify,
    "/v1/verify",
    AsOfQuery,
    "Every check of verify (ok false on a failure)"
);
read_path!(policy, "/v1/policy", AsOfQuery, "Every policy version");

/// The reads themselves, one per endpoint, each as the CLI does it.
mod reads {
    use super::*;

    fn clock(trust: bool, as_of: Option<&str>) -> Result<NaiveDate, Reply> {
        super::super::as_of(trust, as_of)
    }

    fn period(desk: &Desk, flag: &str, text: &str) -> Result<crate::period::Period, Reply> {
        commands::parse_period(desk.ledger().settings(), flag, text).map_err(failed)
    }

    pub fn report(desk: &mut Desk, q: ReportQuery, trust: bool) -> Result<Reply, Reply> {
        let as_of = clock(trust, q.as_of.as_deref())?;
        let format = format_of(q.format.as_deref(), &["json", "csv", "html"])?;
        let ledger = desk.ledger();
        ledger.check_schema().map_err(failed)?;
        let period = period(desk, "period", &q.period)?;
        let report = crate::report::report(ledger, period, as_of).map_err(failed)?;
        Ok(match format {
            "csv" => Reply::text("text/csv", report.to_csv()),
            "html" => {
                use crate::report::html;
                let series =
                    html::cap_series(ledger.conn(), ledger.settings(), &report).map_err(failed)?;
                Reply::text(
                    "text/html; charset=utf-8",
                    html::page(&report.to_json(), &series),
                )
            }
            _ => Reply::json(200, &report.to_json()),
        })
    }

    pub fn history(desk: &mut Desk, q: HistoryQuery, trust: bool) -> Result<Reply, Reply> {
        use crate::report::history;
        let as_of = clock(trust, q.as_of.as_deref())?;
        let format = format_of(q.format.as_deref(), &["json", "csv", "html"])?;
        desk.ledger().check_schema().map_err(failed)?;
        let from = period(desk, "from", &q.from)?;
        let to = period(desk, "to", &q.to)?;
        let reports = history::history(desk.ledger(), from, to, as_of).map_err(failed)?;
        Ok(match format {
            "csv" => Reply::text("text/csv", history::to_csv(&reports)),
            "html" => Reply::text(
                "text/html; charset=utf-8",
                crate::report::html::history_page(&history::to_json(&reports)),
            ),
            _ => Reply::json(200, &history::to_json(&reports)),
        })
    }

    pub fn holds(desk: &mut Desk, q: HoldsQuery, trust: bool) -> Result<Reply, Reply> {
        let as_of = clock(trust, q.as_of.as_deref())?;
        let order = q
            .order
            .as_deref()
            .map(commands::parse_order_ref)
            .transpose()
            .map_err(failed)?;
        let ledger = desk.ledger();
        let found = crate::report::listings::holds(
            ledger.conn(),
            ledger.settings(),
            as_of,
            q.active,
            order.as_deref(),
        );
        listing(found, q.format.as_deref())
    }

    fn identifier(text: Option<&str>) -> Result<Option<String>, Reply> {
        text.map(|id| {
            crate::input::values::parse_identifier(id.trim())
                .map_err(|why| Reply::error_json(400, &format!("'{id}' {why}")))
        })
        .transpose()
    }

    pub fn customers(desk: &mut Desk, q: CustomersQuery, trust: bool) -> Result<Reply, Reply> {
        let as_of = clock(trust, q.as_of.as_deref())?;
        let id = identifier(q.customer.as_deref())?;
        let found = crate::report::listings::customers(desk.ledger().conn(), as_of, id.as_deref());
        listing(found, q.format.as_deref())
    }

    pub fn lots(desk: &mut Desk, q: LotsQuery, trust: bool) -> Result<Reply, Reply> {
        let as_of = clock(trust, q.as_of.as_deref())?;
        let id = identifier(q.lot.as_deref())?;
        let ledger = desk.ledger();
        let found =
            crate::report::listings::lots(ledger.conn(), ledger.settings(), as_of, id.as_deref());
        listing(found, q.format.as_deref())
    }

    pub fn payments(desk: &mut Desk, q: PaymentsQuery, trust: bool) -> Result<Reply, Reply> {
        let as_of = clock(trust, q.as_of.as_deref())?;
        let only = q
            .period
            .as_deref()
            .map(|p| period(desk, "period", p))
            .transpose()?;
        let found = crate::report::listings::payments(desk.ledger().conn(), as_of, only);
        listing(found, q.format.as_deref())
    }

    pub fn sales(desk: &mut Desk, q: SalesQuery, trust: bool) -> Result<Reply, Reply> {
        use crate::input::values::{parse_chip, parse_market};
        let as_of = clock(trust, q.as_of.as_deref())?;
        let of = period(desk, "period", &q.period)?;
        let bad = |flag: &str, why: String| Reply::error_json(400, &format!("--{flag}: {why}"));
        let chip = q
            .chip
            .as_deref()
            .map(parse_chip)
            .transpose()
            .map_err(|w| bad("chip", w))?;
        let market = q
            .market
            .as_deref()
            .map(parse_market)
            .transpose()
            .map_err(|w| bad("market", w))?;
        let found = crate::report::listings::sales(
            desk.ledger().conn(),
            of,
            as_of,
            chip.as_deref(),
            market.as_deref(),
        );
        listing(found, q.format.as_deref())
    }

    pub fn digest(desk: &mut Desk, q: AsOfQuery, trust: bool) -> Result<Reply, Reply> {
        clock(trust, q.as_of.as_deref())?;
        let head = desk.ledger().head().map_err(failed)?;
        Ok(Reply::json(200, &commands::digest_json(&head)))
    }

    pub fn verify(desk: &mut Desk, q: AsOfQuery, trust: bool) -> Result<Reply, Reply> {
        clock(trust, q.as_of.as_deref())?;
        let report =
            crate::store::verify::verify_ledger(desk.ledger().path(), &[]).map_err(failed)?;
        Ok(Reply::json(200, &commands::verify_json(&report)))
    }

    pub fn policy(desk: &mut Desk, q: AsOfQuery, trust: bool) -> Result<Reply, Reply> {
        clock(trust, q.as_of.as_deref())?;
        let value = commands::policy_show_json(desk.ledger().conn()).map_err(failed)?;
        Ok(Reply::json(200, &value))
    }
}

#[utoipa::path(get, path = "/v1/checkpoint", security(("bearer" = [])),
    responses(
        (status = 200, description = "A checkpoint signed with the server's --signing-key", content_type = "application/json"),
        (status = 404, description = "The server has no --signing-key", body = ErrorBody),
        (status = 500, description = "The ledger does not verify: nothing is signed", body = ErrorBody),
        Denied))]
/// `checkpoint` with the server's key (404 without one).
pub async fn checkpoint(State(state): Shared, headers: HeaderMap) -> Response {
    let key = state.signing_key.clone();
    let db = state.db.clone();
    super::read(state, &headers, Permission::Read, move |_desk| {
        let Some(key) = key else {
            return Reply::error_json(404, "this server has no --signing-key");
        };
        match commands::checkpoint(&db, &key) {
            Ok(signed) => Reply::json(200, &signed.to_json()),
            Err(err) => failed(err),
        }
    })
    .await
}

#[utoipa::path(get, path = "/v1/export", security(("bearer" = [])), params(ExportQuery),
    responses(
        (status = 200, description = "Every entry in range, one JSON object per line, streamed", content_type = "application/x-ndjson"),
        (status = 400, description = "Bad input", body = ErrorBody),
        Denied))]
/// `export --format jsonl`, streamed.
pub async fn export(State(state): Shared, headers: HeaderMap, uri: Uri) -> Response {
    let caller = match super::authorize(state.clone(), &headers, Permission::Read).await {
        Ok(caller) => caller,
        Err(denial) => return super::respond(denial.reply, denial.token),
    };
    let token = Some(caller.name);
    let range = query::<ExportQuery>(&uri)
        .and_then(|q| commands::export_range(q.from, q.to).map_err(failed));
    let (from, to) = match range {
        Ok(range) => range,
        Err(reply) => return super::respond(reply, token),
    };
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(8);
    let db = state.db.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkWriter {
            chunk: Vec::with_capacity(CHUNK_BYTES),
            sender,
        };
        let exported = (|| {
            let ledger = Ledger::open_read_only(&db)?;
            ledger.check_schema()?;
            let conn = ledger.conn();
            conn.execute_batch("BEGIN DEFERRED")?;
            let format = crate::report::export::ExportFormat::Jsonl;
            let exported = crate::report::export::export(conn, from, to, format, &mut out);
            conn.execute_batch("COMMIT")?;
            exported.map(|_| ())
        })();
        if exported.is_ok() {
            let _ = std::io::Write::flush(&mut out);
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|chunk| (Ok::<Bytes, std::io::Error>(chunk), receiver))
    });
    let mut response = super::respond(Reply::text("application/x-ndjson", String::new()), token);
    *response.body_mut() = axum::body::Body::from_stream(stream);
    response
}

/// Bytes per streamed export chunk.
const CHUNK_BYTES: usize = 64 * 1024;

/// Sends what is written, in chunks, to the response body; a client that
/// went away ends the export (a broken pipe).
struct ChunkWriter {
    chunk: Vec<u8>,
    sender: tokio::sync::mpsc::Sender<Bytes>,
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.chunk.extend_from_slice(bytes);
        if self.chunk.len() >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.chunk,
            Vec::with_capacity(CHUNK_BYTES),
        ));
        self.sender
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}
