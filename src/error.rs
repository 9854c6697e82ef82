//! Error types and the mapping from errors to process exit codes (SPEC §5).

use std::fmt;

/// The rules a row or request can be refused by (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// No policy version in force, or restricted sales not allowed.
    Policy,
    /// Customer not approved or not in the restricted group on the date.
    Customer,
    /// Lot missing, not cleared, other chip, or over capacity.
    Lot,
    /// Cap invariant of §3.4 would break.
    Cap,
    /// The date falls in a closed period.
    Closed,
    /// An `order_ref` already has an active hold.
    Order,
    /// A return that cannot be matched to its sale.
    Return,
    /// No sufficient US-supply attestation where the policy requires one.
    Supply,
    /// The customer is on a restricted-party list (an uncleared hit).
    Screening,
}

impl Rule {
    /// Whether `import --accept-violations` may record a row this rule
    /// refused (SPEC §3.9, §3.10, §3.11): never `closed`, `order`,
    /// `return` or `screening`.
    pub fn acceptable(self) -> bool {
        matches!(
            self,
            Rule::Policy | Rule::Customer | Rule::Lot | Rule::Cap | Rule::Supply
        )
    }

    /// The rule's name as it appears in JSON and messages.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Policy => "policy",
            Rule::Customer => "customer",
            Rule::Lot => "lot",
            Rule::Cap => "cap",
            Rule::Closed => "closed",
            Rule::Order => "order",
            Rule::Return => "return",
            Rule::Supply => "supply",
            Rule::Screening => "screening",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One problem with one row of an input file: `FILE:LINE: column: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    /// Physical line on which the record starts (header is line 1).
    pub line: u64,
    /// The column the problem is in (`row` when it concerns the whole record).
    pub column: String,
    /// The rule that refused the row, `None` for malformed input.
    pub rule: Option<Rule>,
    /// What is wrong, in words a compliance officer can act on.
    pub message: String,
}

impl RowProblem {
    /// A malformed-input problem (no rule).
    pub fn malformed(line: u64, column: &str, message: impl Into<String>) -> RowProblem {
        RowProblem {
            line,
            column: column.to_string(),
            rule: None,
            message: message.into(),
        }
    }

    /// Formats the problem as `FILE:LINE: column: message`, with
    /// ` (rule R)` after a refusal (SPEC §5).
    pub fn render(&self, file: &str) -> String {
        let text = format!("{}:{}: {}: {}", file, self.line, self.column, self.message);
        match self.rule {
            Some(rule) => format!("{text} (rule {rule})"),
            None => text,
        }
    }
}

/// Everything that can go wrong in the library, grouped by exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input or usage: exit 2.
    #[error("{0}")]
    BadInput(String),
    /// Refused by a rule: exit 1.
    #[error("{0}")]
    Refused(String),
    /// Integrity failure found by `verify`: exit 3.
    #[error("{0}")]
    Integrity(String),
    /// Environment: database locked past the busy timeout, I/O error: exit 4.
    #[error("{0}")]
    Environment(String),
    /// An environment error SQLite reported about the ledger file, not yet
    /// naming the file (`concerning` names it): exit 4.
    #[error("{0}")]
    Ledger(String),
}

impl Error {
    /// The process exit code for this error (SPEC §5).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Refused(_) => 1,
            Error::BadInput(_) => 2,
            Error::Integrity(_) => 3,
            Error::Environment(_) | Error::Ledger(_) => 4,
        }
    }

    /// Names the ledger file an error from SQLite or an integrity error
    /// concerns, unless its message already does: "database error: disk
    /// I/O error" alone does not say which file.
    pub fn concerning(self, path: &std::path::Path) -> Error {
        let name = path.display().to_string();
        let with_path = |message: String| {
            if message.contains(&name) {
                message
            } else {
                format!("{name}: {message}")
            }
        };
        match self {
            Error::BadInput(m) => Error::BadInput(m),
            Error::Refused(m) => Error::Refused(m),
            Error::Integrity(m) => Error::Integrity(with_path(m)),
            Error::Environment(m) => Error::Environment(m),
            Error::Ledger(m) => Error::Environment(with_path(m)),
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Error {
        use rusqlite::ErrorCode;
        if let rusqlite::Error::SqliteFailure(code, _) = &err {
            match code.code {
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                    return Error::Ledger(format!(
                        "the ledger is locked by another process past the busy timeout: {err}"
                    ));
                }
                ErrorCode::NotADatabase => {
                    return Error::BadInput(format!("not a qledger ledger: {err}"));
                }
                ErrorCode::ConstraintViolation => {
                    // Constraint failures mean the append-only triggers or a
                    // schema invariant refused a write: the ledger protected itself.
                    return Error::Integrity(format!("the ledger refused a write: {err}"));
                }
                _ => {}
            }
        }
        Error::Ledger(format!("database error: {err}"))
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Error {
        Error::Environment(format!("I/O error: {err}"))
    }
}

/// Library result type.
pub type Result<T> = std::result::Result<T, Error>;
