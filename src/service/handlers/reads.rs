//! The reads: report, history, listings, digest, verify, policy, checkpoint, export.

use super::*;

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
    crate::service::read(state, &headers, Permission::Read, move |desk| {
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
        read_path!($name, $path, $params, $what, [(serde_json::Value = "application/json")]);
    };
    ($name:ident, $path:literal, $params:ty, $what:literal, [$($content:tt),+]) => {
        #[utoipa::path(get, path = $path, security(("bearer" = [])), params($params),
            responses(
                (status = 200, description = $what, content($($content),+)),
                (status = 400, description = "Bad input", body = ErrorBody),
                                (status = 500, description = "The ledger's schema was altered", body = ErrorBody),
                Denied))]
        #[doc = concat!("`", $path, "`: ", $what, ".")]
        pub async fn $name(State(state): Shared, headers: HeaderMap, uri: Uri) -> Response {
            query_read::<$params>(state, headers, uri, answers::$name).await
        }
    };
}

read_path!(
    report,
    "/v1/report",
    ReportQuery,
    "The period report (json, csv or html)",
    [
        (serde_json::Value = "application/json"),
        (String = "text/csv"),
        (String = "text/html")
    ]
);
read_path!(
    history,
    "/v1/history",
    HistoryQuery,
    "One row per period and chip (json, csv or html)",
    [
        (serde_json::Value = "application/json"),
        (String = "text/csv"),
        (String = "text/html")
    ]
);
read_path!(
    holds,
    "/v1/holds",
    HoldsQuery,
    "The holds listing",
    [
        (serde_json::Value = "application/json"),
        (String = "text/csv")
    ]
);
read_path!(
    customers,
    "/v1/customers",
    CustomersQuery,
    "The customers listing",
    [
        (serde_json::Value = "application/json"),
        (String = "text/csv")
    ]
);
read_path!(
    lots,
    "/v1/lots",
    LotsQuery,
    "The lots listing",
    [
        (serde_json::Value = "application/json"),
        (String = "text/csv")
    ]
);
read_path!(
    payments,
    "/v1/payments",
    PaymentsQuery,
    "The payments listing",
    [
        (serde_json::Value = "application/json"),
        (String = "text/csv")
    ]
);
read_path!(
    sales,
    "/v1/sales",
    SalesQuery,
    "The sales listing of a period",
    [
        (serde_json::Value = "application/json"),
        (String = "text/csv")
    ]
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
mod answers {
    use super::*;

    fn clock(trust: bool, as_of: Option<&str>) -> Result<NaiveDate, Reply> {
        crate::service::as_of(trust, as_of)
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
    crate::service::read(state, &headers, Permission::Read, move |_desk| {
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
    let caller = match crate::service::authorize(state.clone(), &headers, Permission::Read).await {
        Ok(caller) => caller,
        Err(denial) => return crate::service::respond(denial.reply, denial.token),
    };
    let token = Some(caller.name);
    let range = query::<ExportQuery>(&uri)
        .and_then(|q| commands::export_range(q.from, q.to).map_err(failed));
    let (from, to) = match range {
        Ok(range) => range,
        Err(reply) => return crate::service::respond(reply, token),
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
    let mut response =
        crate::service::respond(Reply::text("application/x-ndjson", String::new()), token);
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
