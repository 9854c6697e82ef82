//! Imports of an uploaded CSV body: sales and the reference files.

use super::*;

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
    let sha = crate::service::request_sha256("POST", &uri, &bytes);
    let trust = state.trust_client_as_of;
    let named = headers.clone();
    let prepare = move || {
        let q: Q = query(&uri)?;
        let label = file_name(&named)?;
        let as_of = crate::service::as_of(trust, as_of_of(&q))?;
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
    crate::service::write(state, &headers, sha, permission, prepare).await
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
