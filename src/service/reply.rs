//! A service answer: status, body, and what it appended, with the SPEC §6
//! mapping from the CLI's exit codes to HTTP statuses.

use crate::error::Error;
use serde_json::{json, Value};

/// JSON bodies.
pub const JSON: &str = "application/json";

/// One answer, as sent and as stored for an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: String,
    /// The body.
    pub body: String,
    /// Entries the request appended (for the log line and `/metrics`).
    pub entries_appended: i64,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, value: &Value) -> Reply {
        Reply {
            status,
            content_type: JSON.to_string(),
            body: format!("{value}\n"),
            entries_appended: 0,
        }
    }

    /// Another kind of body (CSV, HTML).
    pub fn text(content_type: &str, body: String) -> Reply {
        Reply {
            status: 200,
            content_type: content_type.to_string(),
            body,
            entries_appended: 0,
        }
    }

    /// An answer stored earlier for the same request.
    pub fn stored(status: u16, content_type: String, body: String) -> Reply {
        Reply {
            status,
            content_type,
            body,
            entries_appended: 0,
        }
    }

    /// `{"error": …, "errors": []}` with `status`.
    pub fn error_json(status: u16, message: &str) -> Reply {
        Reply::json(status, &json!({"error": message, "errors": []}))
    }

    /// The JSON the CLI prints, with the status its exit code maps to.
    pub fn of_code(code: u8, value: &Value) -> Reply {
        Reply::json(status_of_code(code), value)
    }

    /// An error as the CLI would end with it: 409, 400, 500 or 503.
    pub fn from_error(err: &Error) -> Reply {
        let code = u8::try_from(err.exit_code()).unwrap_or(4);
        Reply::error_json(status_of_code(code), &err.to_string())
    }
}

/// SPEC §6: exit 0 → 200, 1 → 409, 2 → 400, 3 → 500, 4 → 503.
pub fn status_of_code(code: u8) -> u16 {
    match code {
        0 => 200,
        1 => 409,
        2 => 400,
        3 => 500,
        _ => 503,
    }
}
