//! The shapes of the service (SPEC §6): request bodies and query strings
//! (fields are the CLI's long options with `_` for `-`; an unknown field is
//! 400), the answers' schemas, and the OpenAPI 3.1 document `utoipa`
//! generates from them and from the handlers.

use serde::Deserialize;
use utoipa::{IntoParams, OpenApi, ToSchema};

/// `POST /v1/check`: a planned shipment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckBody {
    /// Chip code.
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    pub chip: String,
    /// Market, two letters.
    #[schema(pattern = r"^[A-Za-z]{2}$")]
    pub market: String,
    /// Units, 1 to 1,000,000,000.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub units: i64,
    /// Planned shipment date, YYYY-MM-DD.
    #[schema(format = Date)]
    pub date: String,
    /// Customer id.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64)]
    pub customer: Option<String>,
    /// Lot id.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64)]
    pub lot: Option<String>,
    /// The ledger clock; only with `--trust-client-as-of`, else 400.
    #[serde(default)]
    #[schema(format = Date)]
    pub as_of: Option<String>,
}

/// `POST /v1/reserve`: a hold for an order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveBody {
    /// The order reference.
    #[schema(min_length = 1, max_length = 64)]
    pub order: String,
    /// Chip code.
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    pub chip: String,
    /// Market, two letters (a restricted one).
    #[schema(pattern = r"^[A-Za-z]{2}$")]
    pub market: String,
    /// Units, 1 to 1,000,000,000.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub units: i64,
    /// Planned shipment date, YYYY-MM-DD, not before the as-of date.
    #[schema(format = Date)]
    pub date: String,
    /// Customer id.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64)]
    pub customer: Option<String>,
    /// Lot id.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64)]
    pub lot: Option<String>,
    /// Days the hold lasts (default 14).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub ttl_days: Option<i64>,
    /// The ledger clock; only with `--trust-client-as-of`, else 400.
    #[serde(default)]
    #[schema(format = Date)]
    pub as_of: Option<String>,
}

/// `POST /v1/release`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBody {
    /// The order whose active hold ends.
    #[schema(min_length = 1, max_length = 64)]
    pub order: String,
    /// The ledger clock; only with `--trust-client-as-of`, else 400.
    #[serde(default)]
    #[schema(format = Date)]
    pub as_of: Option<String>,
}

/// `POST /v1/remit`: a payment, or with `reverse` its reversal.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemitBody {
    /// The period paid for.
    #[schema(pattern = r"^[0-9]{4}-(Q[1-4]|0[1-9]|1[0-2])$")]
    pub period: String,
    /// Amount in USD (exact decimal text), for a payment.
    #[serde(default)]
    #[schema(pattern = r"^[0-9]+(\.[0-9]{1,4})?$")]
    pub amount: Option<String>,
    /// Date paid, YYYY-MM-DD, for a payment.
    #[serde(default)]
    #[schema(format = Date)]
    pub paid_on: Option<String>,
    /// The payment's reference.
    pub reference: String,
    /// Reverse the payment instead of recording one.
    #[serde(default)]
    pub reverse: bool,
    /// Why (required with `reverse`).
    #[serde(default)]
    pub reason: Option<String>,
    /// The ledger clock; only with `--trust-client-as-of`, else 400.
    #[serde(default)]
    #[schema(format = Date)]
    pub as_of: Option<String>,
}

/// `POST /v1/close`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseBody {
    /// The period to seal.
    #[schema(pattern = r"^[0-9]{4}-(Q[1-4]|0[1-9]|1[0-2])$")]
    pub period: String,
    /// The ledger clock; only with `--trust-client-as-of`, else 400.
    #[serde(default)]
    #[schema(format = Date)]
    pub as_of: Option<String>,
}

/// `POST /v1/policy/withdraw`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawBody {
    /// Chip code.
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    pub chip: String,
    /// The version's date, YYYY-MM-DD.
    #[schema(format = Date)]
    pub effective_from: String,
    /// Why.
    pub reason: String,
    /// The ledger clock; only with `--trust-client-as-of`, else 400.
    #[serde(default)]
    #[schema(format = Date)]
    pub as_of: Option<String>,
}

/// `POST /v1/screening/clear`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClearBody {
    /// The customer.
    #[schema(min_length = 1, max_length = 64)]
    pub customer: String,
    /// The list.
    pub list: String,
    /// The list's entry.
    pub entry: String,
    /// The officer's reason (a documented false positive).
    pub reason: String,
    /// The ledger clock; only with `--trust-client-as-of`, else 400.
    #[serde(default)]
    #[schema(format = Date)]
    pub as_of: Option<String>,
}

/// Query of the reads that take nothing but the clock.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AsOfQuery {
    /// The ledger clock; only with `--trust-client-as-of`, else 400.
    #[param(format = Date)]
    pub as_of: Option<String>,
}

/// `GET /v1/report`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// The period.
    #[param(pattern = r"^[0-9]{4}-(Q[1-4]|0[1-9]|1[0-2])$")]
    pub period: String,
    /// `json` (default), `csv` or `html`.
    #[param(pattern = r"^(json|csv|html)$")]
    pub format: Option<String>,
    /// The ledger clock; only with `--trust-client-as-of`, else 400.
    #[param(format = Date)]
    pub as_of: Option<String>,
}

/// `GET /v1/history`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// First period.
    #[param(pattern = r"^[0-9]{4}-(Q[1-4]|0[1-9]|1[0-2])$")]
    pub from: String,
    /// Last period.
    #[param(pattern = r"^[0-9]{4}-(Q[1-4]|0[1-9]|1[0-2])$")]
    pub to: String,
    /// `json` (default), `csv` or `html`.
    #[param(pattern = r"^(json|csv|html)$")]
    pub format: Option<String>,
    /// The ledger clock; only with `--trust-client-as-of`, else 400.
    #[param(format = Date)]
    pub as_of: Option<String>,
}

/// `GET /v1/holds`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HoldsQuery {
    /// Only active holds.
    #[serde(default)]
    pub active: bool,
    /// Only this order.
    #[param(min_length = 1, max_length = 64)]
    pub order: Option<String>,
    /// `json` (default) or `csv`.
    #[param(pattern = r"^(json|csv)$")]
    pub format: Option<String>,
    /// The ledger clock; only with `--trust-client-as-of`, else 400.
    #[param(format = Date)]
    pub as_of: Option<String>,
}

/// `GET /v1/customers`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CustomersQuery {
    /// Only this customer.
    #[param(min_length = 1, max_length = 64)]
    pub customer: Option<String>,
    /// `json` (default) or `csv`.
    #[param(pattern = r"^(json|csv)$")]
    pub format: Option<String>,
    /// The ledger clock; only with `--trust-client-as-of`, else 400.
    #[param(format = Date)]
    pub as_of: Option<String>,
}

/// `GET /v1/lots`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LotsQuery {
    /// Only this lot.
    #[param(min_length = 1, max_length = 64)]
    pub lot: Option<String>,
    /// `json` (default) or `csv`.
    #[param(pattern = r"^(json|csv)$")]
    pub format: Option<String>,
    /// The ledger clock; only with `--trust-client-as-of`, else 400.
    #[param(format = Date)]
    pub as_of: Option<String>,
}

/// `GET /v1/payments`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PaymentsQuery {
    /// Only this period.
    #[param(pattern = r"^[0-9]{4}-(Q[1-4]|0[1-9]|1[0-2])$")]
    pub period: Option<String>,
    /// `json` (default) or `csv`.
    #[param(pattern = r"^(json|csv)$")]
    pub format: Option<String>,
    /// The ledger clock; only with `--trust-client-as-of`, else 400.
    #[param(format = Date)]
    pub as_of: Option<String>,
}

/// `GET /v1/sales`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SalesQuery {
    /// The period.
    #[param(pattern = r"^[0-9]{4}-(Q[1-4]|0[1-9]|1[0-2])$")]
    pub period: String,
    /// Only this chip.
    #[param(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    pub chip: Option<String>,
    /// Only this market.
    #[param(pattern = r"^[A-Za-z]{2}$")]
    pub market: Option<String>,
    /// `json` (default) or `csv`.
    #[param(pattern = r"^(json|csv)$")]
    pub format: Option<String>,
    /// The ledger clock; only with `--trust-client-as-of`, else 400.
    #[param(format = Date)]
    pub as_of: Option<String>,
}

/// `GET /v1/export`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// First entry (default 1).
    #[param(minimum = 1)]
    pub from: Option<i64>,
    /// Last entry (default the last).
    #[param(minimum = 1)]
    pub to: Option<i64>,
}

/// `POST /v1/imports/sales`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SalesImportQuery {
    /// Check everything, write nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Commit the good rows; the answer adds `rejects_csv`.
    #[serde(default)]
    pub partial: bool,
    /// Record rows refused only by policy, customer, lot, cap or supply.
    #[serde(default)]
    pub accept_violations: bool,
    /// Record rows dated in closed periods as late entries.
    #[serde(default)]
    pub late: bool,
    /// Why (with `accept_violations` or `late`).
    pub reason: Option<String>,
    /// The ledger clock; only with `--trust-client-as-of`, else 400.
    #[param(format = Date)]
    pub as_of: Option<String>,
}

/// `POST /v1/imports/screening`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ScreeningImportQuery {
    /// The snapshot's first day (default the as-of date).
    #[param(format = Date)]
    pub effective: Option<String>,
    /// The ledger clock; only with `--trust-client-as-of`, else 400.
    #[param(format = Date)]
    pub as_of: Option<String>,
}

/// An error that is not an import's answer.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    /// What is wrong, in words.
    error: String,
    /// Always empty here (an import lists its problems in its own answer).
    errors: Vec<serde_json::Value>,
}

/// What any `/v1` request may be answered besides its own answers.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum Denied {
    /// No working token: missing, unknown, revoked or expired.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The token's role may not do this.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// The ledger is busy or cannot be written: retry (see `Retry-After`).
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// What any POST may be answered besides its own answers.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum PostRefused {
    /// A body over 256 MiB.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The Idempotency-Key was used for another request.
    #[response(status = 422)]
    KeyReused(ErrorBody),
}

/// `GET /healthz`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Health {
    /// Always true when answered.
    ok: bool,
    /// Entries in the ledger.
    entries: i64,
}

/// One failed rule of a check or reserve.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Reason {
    /// The rule's name.
    rule: String,
    /// Why, in words.
    message: String,
}

/// The answer of `check` and `reserve` (SPEC §5).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CheckAnswer {
    allowed: bool,
    chip: String,
    market: String,
    period: String,
    units: i64,
    us_units: i64,
    restricted_units: i64,
    reserved_units: i64,
    cap_ratio: Option<String>,
    limit: Option<i64>,
    headroom: Option<i64>,
    reasons: Vec<Reason>,
    /// `reserve` only, when allowed.
    order_ref: Option<String>,
    /// `reserve` only, when allowed.
    expires_on: Option<String>,
    /// `reserve` only.
    already_held: Option<bool>,
}

/// The answer of `release`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ReleaseAnswer {
    order_ref: String,
    released_units: i64,
    already_ended: bool,
}

/// The answer of `digest`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct DigestAnswer {
    entries: i64,
    head: String,
}

/// The answer of `verify`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct VerifyAnswer {
    ok: bool,
    entries: i64,
    head: String,
    first_bad_entry: Option<i64>,
    message: Option<String>,
}

/// One problem of an import.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ImportProblem {
    line: i64,
    column: Option<String>,
    rule: Option<String>,
    message: String,
}

/// The answer of an import (SPEC §5).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ImportAnswer {
    file: String,
    sha256: String,
    rows: i64,
    inserted: i64,
    duplicates: i64,
    rejected: i64,
    errors: Vec<ImportProblem>,
    errors_omitted: Option<i64>,
    accepted_violations: Option<i64>,
    dry_run: Option<bool>,
    /// With `partial`: the rejects file's text.
    rejects_csv: Option<String>,
}

/// A 400 of an import: its answer listing every problem, or an error
/// when the request itself is wrong.
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(untagged)]
pub enum ImportOrError {
    /// The import's answer.
    Import(ImportAnswer),
    /// What is wrong with the request.
    Error(ErrorBody),
}

/// The document as this server accepts requests: without `as_of` fields
/// and parameters unless it trusts the client's clock.
pub fn document(trust_client_as_of: bool) -> serde_json::Value {
    let mut doc = serde_json::to_value(<ApiDoc as OpenApi>::openapi()).unwrap_or_default();
    if !trust_client_as_of {
        strip_as_of(&mut doc);
    }
    doc
}

fn strip_as_of(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Object(properties)) = map.get_mut("properties") {
                properties.remove("as_of");
            }
            if let Some(serde_json::Value::Array(parameters)) = map.get_mut("parameters") {
                parameters.retain(|p| p.get("name").and_then(|n| n.as_str()) != Some("as_of"));
            }
            for (_, child) in map.iter_mut() {
                strip_as_of(child);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_as_of),
        _ => {}
    }
}

/// The OpenAPI document (`GET /openapi.json`).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "qledger",
        description = "Append-only, tamper-evident ledger of controlled AI accelerator exports (SPEC §6). \
            Answers are the JSON the CLI prints with --json."
    ),
    paths(
        super::handlers::healthz,
        super::handlers::openapi_json,
        super::handlers::metrics,
        super::handlers::check,
        super::handlers::reserve,
        super::handlers::release,
        super::handlers::report,
        super::handlers::history,
        super::handlers::holds,
        super::handlers::customers,
        super::handlers::lots,
        super::handlers::payments,
        super::handlers::sales,
        super::handlers::export,
        super::handlers::digest,
        super::handlers::verify,
        super::handlers::policy,
        super::handlers::checkpoint,
        super::handlers::import_sales,
        super::handlers::import_policy,
        super::handlers::import_customers,
        super::handlers::import_lots,
        super::handlers::import_supply,
        super::handlers::import_screening,
        super::handlers::withdraw,
        super::handlers::screening_clear,
        super::handlers::remit,
        super::handlers::close,
    ),
    components(schemas(
        CheckBody, ReserveBody, ReleaseBody, RemitBody, CloseBody, WithdrawBody, ClearBody,
        ErrorBody, Health, Reason, CheckAnswer, ReleaseAnswer, DigestAnswer, VerifyAnswer,
        ImportProblem, ImportAnswer, ImportOrError
    )),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// Declares the bearer scheme every `/v1` endpoint uses.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}
