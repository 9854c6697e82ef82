//! What operators see of the service (SPEC §6 "Operations"): one JSON log
//! line per request on stderr (through `tracing`), the Prometheus text of
//! `/metrics`, and the TLS configuration.

use super::writer::WriterCounters;
use super::{AppState, Handled};
use crate::error::{Error, Result};
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds of the latency buckets, in microseconds.
const BUCKETS_US: [u64; 13] = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 20_000, 50_000, 100_000, 250_000, 1_000_000, 2_500_000,
    10_000_000,
];

/// One route's latencies.
#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Requests at or under each bound (cumulative when rendered).
    buckets: [u64; BUCKETS_US.len()],
    count: u64,
    sum_us: u64,
}

/// Requests by (route, status).
type RequestCounts = BTreeMap<(String, u16), u64>;

/// Requests by route and status, and latencies by route.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<(RequestCounts, BTreeMap<String, Histogram>)>,
}

/// Microseconds as decimal seconds, exactly (no floating point).
fn seconds_text(us: u64) -> String {
    let text = format!("{}.{:06}", us / 1_000_000, us % 1_000_000);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

impl Metrics {
    /// Counts one answered request.
    pub fn record(&self, route: &str, status: u16, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        *inner.0.entry((route.to_string(), status)).or_default() += 1;
        let histogram = inner.1.entry(route.to_string()).or_default();
        if let Some(bucket) = BUCKETS_US.iter().position(|bound| us <= *bound) {
            histogram.buckets[bucket] += 1;
        }
        histogram.count += 1;
        histogram.sum_us = histogram.sum_us.saturating_add(us);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, counters: &WriterCounters) -> String {
        let (requests, latencies) = match self.inner.lock() {
            Ok(inner) => (inner.0.clone(), inner.1.clone()),
            Err(_) => Default::default(),
        };
        let mut text = String::new();
        text.push_str(
            "# HELP qledger_http_requests_total Requests answered, by route and status.\n",
        );
        text.push_str("# TYPE qledger_http_requests_total counter\n");
        for ((route, status), count) in &requests {
            text.push_str(&format!(
                "qledger_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}\n"
            ));
        }
        text.push_str("# HELP qledger_http_request_duration_seconds Time to answer, by route.\n");
        text.push_str("# TYPE qledger_http_request_duration_seconds histogram\n");
        for (route, histogram) in &latencies {
            let mut cumulative = 0;
            for (bound, count) in BUCKETS_US.iter().zip(histogram.buckets) {
                cumulative += count;
                text.push_str(&format!(
                    "qledger_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{}\"}} {cumulative}\n",
                    seconds_text(*bound)
                ));
            }
            text.push_str(&format!(
                "qledger_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}\n\
                 qledger_http_request_duration_seconds_sum{{route=\"{route}\"}} {}\n\
                 qledger_http_request_duration_seconds_count{{route=\"{route}\"}} {}\n",
                histogram.count,
                seconds_text(histogram.sum_us),
                histogram.count
            ));
        }
        let counter = |text: &mut String, name: &str, help: &str, value: u64| {
            text.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            ));
        };
        counter(
            &mut text,
            "qledger_entries_appended_total",
            "Entries appended through the service.",
            counters.entries_appended.load(Relaxed),
        );
        counter(
            &mut text,
            "qledger_write_groups_total",
            "Write transactions committed (one fsync each).",
            counters.groups.load(Relaxed),
        );
        counter(
            &mut text,
            "qledger_write_group_requests_total",
            "Write requests those transactions carried.",
            counters.grouped_requests.load(Relaxed),
        );
        text
    }
}

/// The middleware around every route: times the request, counts it, and
/// logs its line.
pub async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let response = if declared_too_large(&request) {
        // Refused from its Content-Length, before reading a byte of it.
        super::respond(
            super::reply::Reply::error_json(413, "the body is over 256 MiB"),
            None,
        )
    } else {
        next.run(request).await
    };
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let handled = response
        .extensions()
        .get::<Handled>()
        .cloned()
        .unwrap_or_default();
    state.metrics.record(&route, status, elapsed);
    let duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    tracing::info!(
        target: REQUEST_TARGET,
        token = handled.token.as_deref(),
        method = method.as_str(),
        path = path.as_str(),
        status = status,
        duration_us = duration_us,
        entries_appended = handled.entries_appended,
    );
    response
}

/// Whether the request declares a body over `BODY_BYTES_MAX` (a longer
/// body without a length is cut at the limit while it is read: 413 too).
fn declared_too_large(request: &Request) -> bool {
    request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|length| length > super::BODY_BYTES_MAX as u64)
}

/// The `tracing` target of request lines.
const REQUEST_TARGET: &str = "qledger::request";

/// Writes each request event as one JSON line on stderr with the keys of
/// SPEC §6: `time`, `token`, `method`, `path`, `status`, `duration_ms`,
/// `entries_appended`. Never a secret: the token is its name.
struct JsonLines;

#[derive(Default)]
struct Fields {
    token: Option<String>,
    method: String,
    path: String,
    status: u64,
    duration_us: u64,
    entries_appended: i64,
    message: String,
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "token" => self.token = Some(value.to_string()),
            "method" => self.method = value.to_string(),
            "path" => self.path = value.to_string(),
            "message" => self.message = value.to_string(),
            _ => {}
        }
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        match field.name() {
            "status" => self.status = value,
            "duration_us" => self.duration_us = value,
            _ => {}
        }
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        if field.name() == "entries_appended" {
            self.entries_appended = value;
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for JsonLines {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _context: tracing_subscriber::layer::Context<'_, S>,
    ) {
        use std::io::Write;
        let mut fields = Fields::default();
        event.record(&mut fields);
        let time = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        let line = if event.metadata().target() == REQUEST_TARGET {
            // duration_ms exact from integer microseconds.
            format!(
                "{{\"time\":{},\"token\":{},\"method\":{},\"path\":{},\"status\":{},\"duration_ms\":{}.{:03},\"entries_appended\":{}}}\n",
                serde_json::json!(time),
                serde_json::json!(fields.token),
                serde_json::json!(fields.method),
                serde_json::json!(fields.path),
                fields.status,
                fields.duration_us / 1000,
                fields.duration_us % 1000,
                fields.entries_appended
            )
        } else {
            format!(
                "{}\n",
                serde_json::json!({"time": time, "message": fields.message})
            )
        };
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// Sends `tracing` events to stderr as JSON lines (once per process).
pub fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    let subscriber = tracing_subscriber::registry().with(JsonLines);
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// The rustls configuration of `--tls-cert` and `--tls-key` (PEM).
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<axum_server::tls_rustls::RustlsConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &str, path: &std::path::Path, why: String| {
        Error::BadInput(format!("{what} {}: {why}", path.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect())
        .map_err(|err| bad("--tls-cert", cert, err.to_string()))?;
    if certs.is_empty() {
        return Err(bad("--tls-cert", cert, "no certificate in it".to_string()));
    }
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|err| bad("--tls-key", key, err.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| Error::Environment(format!("TLS: {err}")))?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .map_err(|err| {
            bad(
                "--tls-key",
                key,
                format!("does not fit the certificate: {err}"),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(axum_server::tls_rustls::RustlsConfig::from_config(
        Arc::new(config),
    ))
}
