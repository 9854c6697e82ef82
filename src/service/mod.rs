//! `qledger serve` (SPEC §6): the ledger over HTTP for the order desk, the
//! nightly job and the auditors' tools. A thin layer over the library:
//! reads run on pooled connections, writes go to the one writer
//! (`writer`), which commits them in groups; every answer is the JSON the
//! CLI prints (`crate::commands`).

pub mod api;
pub mod auth;
pub mod handlers;
pub mod observe;
pub mod reply;
pub mod writer;

use crate::desk::Desk;
use crate::error::{Error, Result};
use crate::records::tokens::{self, Role};
use crate::store::ledger::{Ledger, Settings};
use auth::Permission;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use reply::Reply;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Largest request body (SPEC §6): larger is 413.
pub const BODY_BYTES_MAX: usize = 256 * 1024 * 1024;
/// How long SIGTERM waits for requests in flight (SPEC §6).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Threads answering reads, each with its own read connection.
pub const READ_THREADS_MAX: usize = 32;

/// `qledger serve`'s options.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The ledger file.
    pub db: PathBuf,
    /// `--listen`.
    pub listen: String,
    /// `--tls-cert` and `--tls-key` (PEM).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `--signing-key` for `/v1/checkpoint`.
    pub signing_key: Option<PathBuf>,
    /// `--insecure-http`: plain HTTP beyond loopback.
    pub insecure_http: bool,
    /// `--trust-client-as-of`: requests may carry `as_of`.
    pub trust_client_as_of: bool,
}

/// Who is asking: a working token's name and role.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's name.
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// What every handler shares.
pub struct AppState {
    /// The ledger file.
    pub db: PathBuf,
    /// Its settings.
    pub settings: Settings,
    /// `--trust-client-as-of`.
    pub trust_client_as_of: bool,
    /// `--signing-key`, read at start.
    pub signing_key: Option<ed25519_dalek::SigningKey>,
    /// The OpenAPI document, rendered once.
    pub openapi: String,
    /// Requests for the writer (taken at shutdown so it can end).
    writer: Mutex<Option<std::sync::mpsc::Sender<writer::Job>>>,
    /// Requests, statuses and latencies.
    pub metrics: observe::Metrics,
    /// The writer's counts.
    pub counters: Arc<writer::WriterCounters>,
}

impl AppState {
    /// The caller of a working token that may do `permission`: else 401
    /// (no, unknown, revoked or expired token) or 403.
    fn authorize(
        &self,
        desk: &Desk,
        secret: Option<&str>,
        permission: Permission,
    ) -> std::result::Result<Caller, Denial> {
        let unauthorized = |why: &str| Denial::anonymous(Reply::error_json(401, why));
        let failed = |err: Error| Denial::anonymous(Reply::from_error(&err));
        let Some(secret) = secret else {
            return Err(unauthorized("send Authorization: Bearer <token>"));
        };
        let today = crate::store::clock::today().map_err(failed)?;
        let token = tokens::authenticate(desk.ledger().conn(), secret, today)
            .map_err(failed)?
            .ok_or_else(|| unauthorized("the token is unknown, revoked or expired"))?;
        if !auth::may(token.role, permission) {
            let why = format!(
                "token {} has role {}, which may not do this",
                token.name,
                token.role.name()
            );
            // The log line names who was refused.
            return Err(Denial {
                reply: Reply::error_json(403, &why),
                token: Some(token.name),
            });
        }
        Ok(Caller {
            name: token.name,
            role: token.role,
        })
    }
}

/// A request that may not go on: its answer (401, 403, or what went
/// wrong) and, for a 403, the token's name for the log line.
#[derive(Debug)]
pub struct Denial {
    /// The answer.
    pub reply: Reply,
    /// The token's name, when it works but its role may not.
    pub token: Option<String>,
}

impl Denial {
    fn anonymous(reply: Reply) -> Denial {
        Denial { reply, token: None }
    }
}

thread_local! {
    /// Each read thread's own connection (a desk keeps what it looked up
    /// until the ledger changes); closed when the thread ends.
    static DESK: std::cell::RefCell<Option<(PathBuf, Desk)>> = const { std::cell::RefCell::new(None) };
}

/// Runs `work` on this thread's connection to `db`, opening it first.
fn with_desk<T>(db: &std::path::Path, work: impl FnOnce(&mut Desk) -> T) -> Result<T> {
    DESK.with(|cell| {
        let mut slot = cell.borrow_mut();
        if !matches!(&*slot, Some((path, _)) if path == db) {
            *slot = Some((db.to_path_buf(), Desk::new(Ledger::open(db)?)));
        }
        match slot.as_mut() {
            Some((_, desk)) => Ok(work(desk)),
            None => Err(Error::Environment("no read connection".to_string())),
        }
    })
}

/// What the log line and `/metrics` learn from a handler.
#[derive(Debug, Clone, Default)]
pub struct Handled {
    /// The token's name, once authorised.
    pub token: Option<String>,
    /// Entries the request appended.
    pub entries_appended: i64,
}

/// The HTTP response of a reply.
pub fn respond(reply: Reply, token: Option<String>) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut response = (status, reply.body).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&reply.content_type) {
        headers.insert(axum::http::header::CONTENT_TYPE, value);
    }
    if reply.status == 401 {
        headers.insert(
            axum::http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer"),
        );
    }
    if reply.status == 503 {
        headers.insert(
            axum::http::header::RETRY_AFTER,
            HeaderValue::from_static("1"),
        );
    }
    response.extensions_mut().insert(Handled {
        token,
        entries_appended: reply.entries_appended,
    });
    response
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    auth::bearer_secret(value).map(str::to_string)
}

/// The as-of date of a request: today's, or the client's only with
/// `--trust-client-as-of` (SPEC §6 "Clock").
pub fn as_of(trust: bool, requested: Option<&str>) -> std::result::Result<NaiveDate, Reply> {
    match requested {
        None => crate::store::clock::today().map_err(|err| Reply::from_error(&err)),
        Some(_) if !trust => Err(Reply::error_json(
            400,
            "as_of is accepted only when the server runs with --trust-client-as-of",
        )),
        Some(text) => commands::parse_date_option("as-of", text).map_err(|e| Reply::from_error(&e)),
    }
}

use crate::commands;

/// Runs `work` on a pooled connection, without a token (`/healthz`).
pub async fn read_open<F>(state: Arc<AppState>, work: F) -> Response
where
    F: FnOnce(&mut Desk) -> Reply + Send + 'static,
{
    let joined = tokio::task::spawn_blocking(move || with_desk(&state.db, work)).await;
    match joined {
        Ok(Ok(reply)) => respond(reply, None),
        Ok(Err(err)) => respond(Reply::from_error(&err), None),
        Err(_) => respond(Reply::error_json(503, "the request was interrupted"), None),
    }
}

/// Authorises the caller, then runs `work` on a pooled connection.
pub async fn read<F>(
    state: Arc<AppState>,
    headers: &HeaderMap,
    permission: Permission,
    work: F,
) -> Response
where
    F: FnOnce(&mut Desk) -> Reply + Send + 'static,
{
    let secret = bearer(headers);
    let joined = tokio::task::spawn_blocking(move || {
        with_desk(&state.db, |desk| {
            match state.authorize(desk, secret.as_deref(), permission) {
                Ok(caller) => (work(desk), Some(caller.name)),
                Err(denial) => (denial.reply, denial.token),
            }
        })
    })
    .await;
    match joined {
        Ok(Ok((reply, token))) => respond(reply, token),
        Ok(Err(err)) => respond(Reply::from_error(&err), None),
        Err(_) => respond(Reply::error_json(503, "the request was interrupted"), None),
    }
}

/// The caller, if its token works and its role may do `permission`.
pub async fn authorize(
    state: Arc<AppState>,
    headers: &HeaderMap,
    permission: Permission,
) -> std::result::Result<Caller, Denial> {
    let secret = bearer(headers);
    let caller = tokio::task::spawn_blocking(move || {
        with_desk(&state.db, |desk| {
            state.authorize(desk, secret.as_deref(), permission)
        })
    })
    .await;
    match caller {
        Ok(Ok(caller)) => caller,
        Ok(Err(err)) => Err(Denial::anonymous(Reply::from_error(&err))),
        Err(_) => Err(Denial::anonymous(Reply::error_json(
            503,
            "the request was interrupted",
        ))),
    }
}

/// A write, parsed: its as-of date, its work, and whether it runs in a
/// transaction of its own (imports).
pub struct Prepared {
    /// The ledger clock for it.
    pub as_of: NaiveDate,
    /// What it does.
    pub work: writer::Work,
    /// Runs in a transaction of its own (imports).
    pub alone: bool,
}

/// Authorises the caller, checks `Idempotency-Key`, parses the request
/// (`prepare`), and hands it to the writer; answers once it is durable.
pub async fn write<P>(
    state: Arc<AppState>,
    headers: &HeaderMap,
    request_sha256: String,
    permission: Permission,
    prepare: P,
) -> Response
where
    P: FnOnce() -> std::result::Result<Prepared, Reply>,
{
    let caller = match authorize(state.clone(), headers, permission).await {
        Ok(caller) => caller,
        Err(denial) => return respond(denial.reply, denial.token),
    };
    let token = Some(caller.name.clone());
    let key = match headers
        .get("idempotency-key")
        .map(idempotency_key)
        .transpose()
    {
        Ok(key) => key,
        Err(reply) => return respond(reply, token),
    };
    let prepared = match prepare() {
        Ok(prepared) => prepared,
        Err(reply) => return respond(reply, token),
    };
    let (answer, answered) = tokio::sync::oneshot::channel();
    let job = writer::Job {
        token_name: caller.name.clone(),
        as_of: prepared.as_of,
        idempotency: key.map(|key| (key, request_sha256)),
        work: prepared.work,
        alone: prepared.alone,
        answer,
    };
    let sent = state
        .writer
        .lock()
        .ok()
        .and_then(|writer| writer.as_ref().map(|w| w.send(job).is_ok()))
        .unwrap_or(false);
    if !sent {
        return respond(Reply::error_json(503, "the server is shutting down"), token);
    }
    match answered.await {
        Ok(reply) => respond(reply, token),
        Err(_) => respond(Reply::error_json(503, "the writer stopped; retry"), token),
    }
}

/// A valid `Idempotency-Key` (1–128 visible ASCII characters), else 400.
pub fn idempotency_key(value: &HeaderValue) -> std::result::Result<String, Reply> {
    value
        .to_str()
        .ok()
        .filter(|key| auth::idempotency_key_ok(key))
        .map(str::to_string)
        .ok_or_else(|| Reply::error_json(400, "Idempotency-Key: 1 to 128 visible ASCII characters"))
}

/// SHA-256 of a request as the idempotency record keeps it: method, path,
/// query and body.
pub fn request_sha256(method: &str, uri: &axum::http::Uri, body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update(b"\n");
    hasher.update(uri.path().as_bytes());
    hasher.update(b"\n");
    hasher.update(uri.query().unwrap_or("").as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    hex::encode(hasher.finalize())
}

/// Whether `addr` may be served in plain HTTP without `--insecure-http`.
fn loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// Checks the options before anything starts (exit 2 on a bad one).
fn check_options(options: &ServeOptions) -> Result<SocketAddr> {
    let addr: SocketAddr = options.listen.trim().parse().map_err(|_| {
        Error::BadInput(format!(
            "--listen {}: an address and port such as 127.0.0.1:8640",
            options.listen
        ))
    })?;
    if options.tls.is_none() && !loopback(&addr) && !options.insecure_http {
        return Err(Error::BadInput(format!(
            "--listen {addr} is not a loopback address: serve it with --tls-cert and --tls-key, \
             or say --insecure-http (behind a TLS-terminating proxy)"
        )));
    }
    Ok(addr)
}

/// `qledger serve`: serves until SIGTERM or SIGINT, then finishes the
/// requests in flight (at most `SHUTDOWN_GRACE`), commits, checkpoints and
/// returns.
pub fn serve(options: ServeOptions) -> Result<()> {
    let addr = check_options(&options)?;
    let ledger = Ledger::open(&options.db)?;
    ledger.check_schema()?;
    // Each request of a group is a savepoint: keep its statement journal
    // in memory rather than in a temporary file (bounded by the group).
    ledger
        .conn()
        .pragma_update(None, "temp_store", "MEMORY")
        .map_err(|err| Error::from(err).concerning(&options.db))?;
    let settings = ledger.settings().clone();
    let signing_key = options
        .signing_key
        .as_deref()
        .map(crate::store::checkpoint::read_key)
        .transpose()?;
    let tls = match &options.tls {
        Some((cert, key)) => Some(observe::tls_config(cert, key)?),
        None => None,
    };
    observe::init_logging();
    let counters = Arc::new(writer::WriterCounters::default());
    let (sender, writer_thread) = writer::spawn(ledger, counters.clone())?;
    let openapi = api::document(options.trust_client_as_of).to_string();
    let state = Arc::new(AppState {
        db: options.db.clone(),
        settings,
        trust_client_as_of: options.trust_client_as_of,
        signing_key,
        openapi,
        writer: Mutex::new(Some(sender)),
        metrics: observe::Metrics::default(),
        counters,
    });
    let served = run_server(state.clone(), addr, tls);
    // Let the writer finish what it took, then close every connection:
    // the last one to close checkpoints the WAL into the file.
    if let Ok(mut writer) = state.writer.lock() {
        writer.take();
    }
    let _ = writer_thread.join();
    served
}

fn run_server(
    state: Arc<AppState>,
    addr: SocketAddr,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("qledger-serve")
        .max_blocking_threads(READ_THREADS_MAX)
        .build()
        .map_err(|err| Error::Environment(format!("cannot start the service: {err}")))?;
    runtime.block_on(async move {
        let app = handlers::router(state);
        let handle = axum_server::Handle::new();
        let shutdown = handle.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            shutdown.graceful_shutdown(Some(SHUTDOWN_GRACE));
        });
        let service = app.into_make_service();
        let bound = match tls {
            Some(config) => {
                axum_server::bind_rustls(addr, config)
                    .handle(handle)
                    .serve(service)
                    .await
            }
            None => axum_server::bind(addr).handle(handle).serve(service).await,
        };
        bound.map_err(|err| Error::Environment(format!("cannot serve on {addr}: {err}")))
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
