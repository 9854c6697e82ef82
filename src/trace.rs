//! `QLEDGER_TRACE=1`: each command prints when its phases ended, on stderr
//! (for finding where an import or a `reserve` spends its time; stdout is
//! untouched, so cron output stays the same).

use std::sync::OnceLock;
use std::time::Instant;

/// When the process started tracing (`None`: tracing is off).
fn started() -> Option<Instant> {
    static START: OnceLock<Option<Instant>> = OnceLock::new();
    *START.get_or_init(|| std::env::var_os("QLEDGER_TRACE").map(|_| Instant::now()))
}

/// Starts the clock (call first thing in `main`, so phases count from there).
pub fn start() {
    let _ = started();
}

/// Prints that `phase` of `label` ended, with the time since `start`.
pub fn phase(label: &str, phase: &str) {
    if let Some(start) = started() {
        eprintln!(
            "qledger trace: {label}: {phase} done at {:.3} ms",
            start.elapsed().as_secs_f64() * 1e3
        );
    }
}
