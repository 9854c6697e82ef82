//! `qledger`: the command line. Parses arguments, calls the library, prints.

use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use quotaledger::commands;
use quotaledger::desk::Request;
use quotaledger::input::reference_import::{import_reference, ImportSummary, ReferenceRow};
use quotaledger::input::sales_import::{import_sales, Progress, SalesImportOptions};
use quotaledger::input::values::{parse_chip, parse_identifier, parse_market};
use quotaledger::period::format_date;
use quotaledger::period::{parse_date, PeriodKind};
use quotaledger::records::customers::CustomerEvent;
use quotaledger::records::lots::LotEvent;
use quotaledger::records::policy::{versions_for_show, PolicyVersion};
use quotaledger::records::supply::SupplyAttestation;
use quotaledger::report::payments::Remitted;
use quotaledger::store::checkpoint::Checkpoint;
use quotaledger::store::ledger::{parse_digest, Ledger, Settings};
use quotaledger::store::verify::{verify_ledger, Anchor};
use quotaledger::Error;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stdout is a closed pipe (`qledger … | head -1`): the rest of
/// the answer is dropped quietly and the command ends as it would have.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// `--quiet`: the answer is held back here, and printed only if the command
/// does not succeed.
static QUIET: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Writes `text` to stdout. A closed pipe ends output quietly (as `head`
/// expects); any other write error is exit 4 (SPEC §5). Never panics.
fn write_out(text: &str) -> Result<(), Error> {
    use std::io::Write;
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    if let Ok(mut held) = QUIET.lock() {
        if let Some(held) = held.as_mut() {
            held.push_str(text);
            return Ok(());
        }
    }
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        Err(err) => Err(Error::Environment(format!(
            "cannot write the answer to standard output: {err}"
        ))),
    }
}

/// The message without the operating system's error numbers (" (os error
/// 28)"): they tell a compliance officer nothing the words do not.
fn without_os_error_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(" (os error ") {
        let after = &rest[start + " (os error ".len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && after[digits..].starts_with(')') {
            out.push_str(&rest[..start]);
            rest = &after[digits + 1..];
        } else {
            out.push_str(&rest[..start + 1]);
            rest = &rest[start + 1..];
        }
    }
    out.push_str(rest);
    out
}

/// Writes a line to stderr; an error there has nowhere to be told, so it
/// is ignored rather than a panic.
fn write_err(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

macro_rules! outln {
    ($($arg:tt)*) => { write_out(&format!("{}\n", format_args!($($arg)*)))? };
}

#[derive(Parser)]
#[command(
    name = "qledger",
    version,
    about = "Append-only, tamper-evident ledger for exports of controlled AI accelerators",
    after_help = "Exit codes: 0 done or allowed; 1 refused by a rule (a check not allowed, an import \
with rule refusals, a period not yet over); 2 bad input or usage; 3 integrity failure (verify found \
a broken chain, an altered schema, a changed sealed period, a digest or checkpoint mismatch); \
4 environment (ledger locked past the busy timeout, I/O error).\n\n\
Environment: QLEDGER_DB (--db), QLEDGER_ACTOR (--actor), QLEDGER_TODAY (today's date, for tests \
and replays), QLEDGER_BUSY_TIMEOUT_MS (how long a writer waits for another, default 30000), \
QLEDGER_TRACE (phase timings on stderr)."
)]
struct Cli {
    /// The ledger file.
    #[arg(
        long,
        global = true,
        env = "QLEDGER_DB",
        default_value = "./ledger.sqlite",
        help_heading = "Global options"
    )]
    db: PathBuf,
    /// Machine-readable output (JSON) on stdout.
    #[arg(long, global = true, help_heading = "Global options")]
    json: bool,
    /// Nothing on stdout when the command succeeds (for cron); the answer is
    /// printed when it does not.
    #[arg(long, global = true, help_heading = "Global options")]
    quiet: bool,
    /// The ledger's clock, YYYY-MM-DD (default: today's UTC date).
    #[arg(
        long = "as-of",
        global = true,
        value_name = "DATE",
        help_heading = "Global options"
    )]
    as_of: Option<String>,
    /// Who is acting, recorded with every entry a command appends (default: os:<login name>).
    #[arg(
        long,
        global = true,
        env = "QLEDGER_ACTOR",
        value_name = "NAME",
        help_heading = "Global options"
    )]
    actor: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new ledger file (refuses an existing file).
    #[command(
        after_help = "Example:\n  qledger --db ledger.sqlite init --period quarter --restricted CN,HK,MO"
    )]
    Init {
        /// Reporting period: month (ids YYYY-MM) or quarter (ids YYYY-Qn).
        #[arg(long, default_value = "quarter", value_parser = ["month", "quarter"])]
        period: String,
        /// The restricted market group, comma-separated.
        #[arg(long, default_value = "CN,HK,MO")]
        restricted: String,
    },
    /// Policy versions.
    Policy {
        #[command(subcommand)]
        action: PolicyAction,
    },
    /// Customer approvals and revocations.
    Customers {
        #[command(subcommand)]
        action: ImportAction,
    },
    /// Lab results per lot.
    Lots {
        #[command(subcommand)]
        action: ImportAction,
    },
    /// US-supply attestations (US supply first).
    Supply {
        #[command(subcommand)]
        action: SupplyAction,
    },
    /// Access tokens of the service: issue, revoke, list (whoever holds the file administers them).
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Restricted-party screening: list snapshots, clearances, the daily check.
    Screening {
        #[command(subcommand)]
        action: ScreeningAction,
    },
    /// Import a nightly sales file (atomic unless --partial).
    #[command(
        after_help = "Example:\n  qledger import sales-2026-02-16.csv\n  qledger import sales.csv --partial --rejects rejects.csv\n  qledger --as-of 2026-07-01 import found.csv --late --reason \"found in the Q2 audit\""
    )]
    Import {
        #[command(flatten)]
        args: ImportArgs,
    },
    /// May this order be booked? Runs every rule; never writes.
    #[command(
        after_help = "Example:\n  qledger check --chip H200 --market CN --units 100 --date 2026-06-10 --customer C-ALPHA --lot L-H200-0002"
    )]
    Check {
        #[command(flatten)]
        request: RequestArgs,
    },
    /// Check and, if allowed, hold the headroom for an order.
    #[command(
        after_help = "Example:\n  qledger reserve --order PO-1 --chip H200 --market CN --units 100 --date 2026-06-10 --customer C-ALPHA --lot L-H200-0002 --ttl-days 14"
    )]
    Reserve {
        /// The order reference the hold is for.
        #[arg(long = "order", value_name = "REF")]
        order_ref: String,
        #[command(flatten)]
        request: RequestArgs,
        /// Days until the hold expires (counted from --as-of).
        #[arg(long, default_value_t = quotaledger::desk::TTL_DAYS_DEFAULT, allow_negative_numbers = true)]
        ttl_days: i64,
    },
    /// End an order's active hold early.
    #[command(after_help = "Example:\n  qledger release --order PO-1")]
    Release {
        /// The order reference.
        #[arg(long = "order", value_name = "REF")]
        order_ref: String,
    },
    /// A period's figures: caps, remittance, lots, violations, imports.
    #[command(
        after_help = "Example:\n  qledger report --period 2026-Q1\n  qledger report --period 2026-Q1 --format csv > q1.csv\n  (periods: YYYY-Qn for a quarterly ledger, YYYY-MM for a monthly one)"
    )]
    Report {
        /// Period id: YYYY-Qn on a quarterly ledger (2026-Q1), YYYY-MM on a monthly one (2026-03).
        #[arg(long)]
        period: String,
        /// table, json, csv or html (one self-contained page; --json means json).
        #[arg(long, value_parser = ["table", "json", "csv", "html"])]
        format: Option<String>,
    },
    /// Record a remittance payment for a period (open or closed), or reverse one.
    #[command(
        after_help = "Example:\n  qledger remit --period 2026-Q1 --amount 34787593.75 --paid-on 2026-04-15 --reference WIRE-0415\n  qledger remit --reverse --period 2026-Q1 --reference WIRE-0415 --reason \"keyed for the wrong period\""
    )]
    Remit {
        #[command(flatten)]
        args: RemitArgs,
    },
    /// Seal a period that is over.
    #[command(after_help = "Example:\n  qledger --as-of 2026-04-01 close --period 2026-Q1")]
    Close {
        /// Period id: YYYY-Qn on a quarterly ledger (2026-Q1), YYYY-MM on a monthly one (2026-03).
        #[arg(long)]
        period: String,
    },
    /// Prove the ledger: the chain, the schema, the derived tables, every sealed period.
    #[command(
        after_help = "Example:\n  qledger verify\n  qledger verify --checkpoint checkpoints/2026-04-01.json --trust <PUBKEY>"
    )]
    Verify {
        /// A digest taken earlier (N:HEX, from `qledger digest`) the ledger must extend; repeatable.
        #[arg(long, value_name = "N:HEX")]
        digest: Vec<String>,
        /// A signed checkpoint (from `qledger checkpoint`) the ledger must extend; repeatable.
        #[arg(long, value_name = "FILE")]
        checkpoint: Vec<PathBuf>,
        /// A trusted public key (64 hex digits); checkpoints signed by any other key fail. Repeatable.
        #[arg(long, value_name = "PUBKEY", requires = "checkpoint")]
        trust: Vec<String>,
    },
    /// Write a new Ed25519 signing key for checkpoints (mode 0600; refuses an existing file).
    #[command(after_help = "Example:\n  qledger keygen --out /etc/qledger/checkpoint.pem")]
    Keygen {
        /// Where to write the key (PKCS#8 PEM).
        #[arg(long, value_name = "KEYFILE")]
        out: PathBuf,
    },
    /// Verify the ledger, then print a signed statement of its head.
    #[command(
        after_help = "Example:\n  qledger checkpoint --key /etc/qledger/checkpoint.pem --out checkpoints/$(date -u +%F).json"
    )]
    Checkpoint {
        /// The signing key (from `qledger keygen`).
        #[arg(long, value_name = "KEYFILE")]
        key: PathBuf,
        /// Also write the checkpoint to this file (refuses an existing file).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Print the stored chain head: entry count and hash (verify proves it).
    #[command(after_help = "Example:\n  qledger digest")]
    Digest,
    /// List holds: every one with a state on the as-of date, or the active ones.
    #[command(
        after_help = "Example:\n  qledger holds --active\n  qledger holds --order PO-1 --format json"
    )]
    Holds {
        /// Only holds active on the as-of date.
        #[arg(long)]
        active: bool,
        /// Only the holds of this order.
        #[arg(long = "order", value_name = "REF")]
        order_ref: Option<String>,
        /// table, json or csv (--json means json).
        #[arg(long, value_parser = ["table", "json", "csv"])]
        format: Option<String>,
    },
    /// Every period's figures from one period to another (at most 120).
    #[command(
        after_help = "Example:\n  qledger history --from 2026-Q1 --to 2026-Q4\n  qledger history --from 2026-01 --to 2026-12 --format csv > 2026.csv"
    )]
    History {
        /// First period: YYYY-Qn on a quarterly ledger (2026-Q1), YYYY-MM on a monthly one (2026-03).
        #[arg(long, value_name = "PERIOD")]
        from: String,
        /// Last period, of the same form.
        #[arg(long, value_name = "PERIOD")]
        to: String,
        /// table, json, csv or html (one self-contained page; --json means json).
        #[arg(long, value_parser = ["table", "json", "csv", "html"])]
        format: Option<String>,
    },
    /// Every entry, in sequence order, with its kind, hash and fields, for an auditor's own tools.
    #[command(
        after_help = "Example:\n  qledger export --format jsonl > ledger.jsonl\n  qledger export --from 1000 --to 2000 --format csv > part.csv"
    )]
    Export {
        /// First entry (default 1).
        #[arg(long, value_name = "N")]
        from: Option<i64>,
        /// Last entry (default the last).
        #[arg(long, value_name = "N")]
        to: Option<i64>,
        /// jsonl (exact; --json means jsonl) or csv (every kind's columns; NULL as \N).
        #[arg(long, value_parser = ["jsonl", "csv"])]
        format: Option<String>,
    },
    /// List the sales and returns dated in a period.
    #[command(after_help = "Example:\n  qledger sales --period 2026-Q1 --market CN --format csv")]
    Sales {
        /// The period.
        #[arg(long)]
        period: String,
        /// Only this chip's.
        #[arg(long)]
        chip: Option<String>,
        /// Only this market's.
        #[arg(long)]
        market: Option<String>,
        /// table, json or csv (--json means json).
        #[arg(long, value_parser = ["table", "json", "csv"])]
        format: Option<String>,
    },
    /// List remittance payments and their reversals.
    #[command(after_help = "Example:\n  qledger payments --period 2026-Q1")]
    Payments {
        /// Only this period's.
        #[arg(long)]
        period: Option<String>,
        /// table, json or csv (--json means json).
        #[arg(long, value_parser = ["table", "json", "csv"])]
        format: Option<String>,
    },
    /// Serve the ledger over HTTP (SPEC §6) until SIGTERM or SIGINT.
    Serve {
        #[command(flatten)]
        args: ServeArgs,
    },
    /// Print a shell completion script (bash, zsh or fish).
    #[command(
        after_help = "Example:\n  qledger completions bash > /etc/bash_completion.d/qledger"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// The options of `import`.
#[derive(clap::Args)]
struct ImportArgs {
    /// The sales CSV file.
    file: PathBuf,
    /// Do every check, write nothing, answer as the real run would.
    #[arg(long)]
    dry_run: bool,
    /// Commit the good rows; write the others to --rejects.
    #[arg(long, requires = "rejects")]
    partial: bool,
    /// Where --partial writes rejected rows (original columns, line, error).
    #[arg(long, value_name = "OUT.csv", requires = "partial")]
    rejects: Option<PathBuf>,
    /// Record rows refused only by policy, customer, lot or cap, marked as violations.
    #[arg(long, requires = "reason")]
    accept_violations: bool,
    /// Record rows dated in closed periods as late entries (the sealed figures stay).
    #[arg(long, requires = "reason")]
    late: bool,
    /// Why the violations or late entries are recorded (with --accept-violations or --late).
    #[arg(long)]
    reason: Option<String>,
}

/// The options of `remit`: a payment, or with `--reverse` its reversal.
#[derive(clap::Args)]
struct RemitArgs {
    /// Period id: YYYY-Qn on a quarterly ledger (2026-Q1), YYYY-MM on a monthly one (2026-03).
    #[arg(long)]
    period: String,
    /// Amount in USD (up to 4 decimals).
    #[arg(long, required_unless_present = "reverse", conflicts_with = "reverse")]
    amount: Option<String>,
    /// Payment date.
    #[arg(
        long = "paid-on",
        required_unless_present = "reverse",
        conflicts_with = "reverse"
    )]
    paid_on: Option<String>,
    /// Payment reference (unique in its period; a retried remit with the same payment is a no-op).
    #[arg(long)]
    reference: String,
    /// Reverse the payment with this period and reference instead.
    #[arg(long, requires = "reason")]
    reverse: bool,
    /// Why the payment is reversed (required with --reverse).
    #[arg(long, requires = "reverse")]
    reason: Option<String>,
}

/// The options of `serve`.
#[derive(clap::Args)]
struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:8640", value_name = "ADDR:PORT")]
    listen: String,
    /// TLS certificate chain (PEM).
    #[arg(long, value_name = "F", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "F", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Ed25519 key (from `keygen`) that signs `/v1/checkpoint`.
    #[arg(long, value_name = "F")]
    signing_key: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback address (behind a TLS proxy).
    #[arg(long)]
    insecure_http: bool,
    /// Let requests carry `as_of` (replays and tests only).
    #[arg(long)]
    trust_client_as_of: bool,
}

/// A planned shipment, as `check` and `reserve` take it.
#[derive(clap::Args)]
struct RequestArgs {
    /// Chip code.
    #[arg(long)]
    chip: String,
    /// Market (two letters).
    #[arg(long)]
    market: String,
    /// Units.
    #[arg(long)]
    units: String,
    /// Planned shipment date, YYYY-MM-DD.
    #[arg(long)]
    date: String,
    /// Customer id.
    #[arg(long = "customer")]
    customer: Option<String>,
    /// Lot id.
    #[arg(long = "lot")]
    lot: Option<String>,
}

impl RequestArgs {
    fn parse(&self) -> Result<Request, Error> {
        commands::parse_request(
            &self.chip,
            &self.market,
            &self.units,
            &self.date,
            self.customer.as_deref(),
            self.lot.as_deref(),
        )
    }
}

#[derive(Subcommand)]
enum PolicyAction {
    /// Import policy versions from a CSV file.
    Import {
        /// CSV: chip, effective_from, restricted_allowed, cap_ratio, cap_window,
        /// remittance_rate, lab_test_required, customer_approval_required, source
        /// [, us_supply_attestation_required, end_use_certificate_required]
        file: PathBuf,
    },
    /// Show every recorded policy version (withdrawn ones marked).
    Show,
    /// Withdraw a version recorded by mistake, before it takes effect.
    Withdraw {
        /// The version's chip.
        #[arg(long)]
        chip: String,
        /// The version's effective_from date (after the as-of date).
        #[arg(long = "effective-from", value_name = "DATE")]
        effective_from: String,
        /// Why it is withdrawn.
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Issue a token; its secret is shown this once (only its SHA-256 is recorded).
    #[command(
        after_help = "Example:\n  qledger token issue --name oms-prod --role desk --expires-on 2027-01-01"
    )]
    Issue {
        /// The token's name (recorded as the actor token:<name> of what it appends).
        #[arg(long)]
        name: String,
        /// What it may do.
        #[arg(long, value_parser = ["desk", "importer", "officer", "auditor"])]
        role: String,
        /// First day it no longer works (optional; YYYY-MM-DD, after the as-of date).
        #[arg(long = "expires-on", value_name = "DATE")]
        expires_on: Option<String>,
    },
    /// Revoke the working token of that name.
    #[command(after_help = "Example:\n  qledger token revoke --name oms-prod")]
    Revoke {
        /// The token's name.
        #[arg(long)]
        name: String,
    },
    /// List every token issued (never a secret).
    #[command(after_help = "Example:\n  qledger --json token list")]
    List,
}

#[derive(Subcommand)]
enum SupplyAction {
    /// Import US-supply attestations from a CSV file.
    #[command(after_help = "Example:\n  qledger supply import supply.csv")]
    Import {
        /// CSV: chip, period, us_inventory_units, us_open_orders_units, attested_on,
        /// attested_by, reference
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum ScreeningAction {
    /// Import a full snapshot of a restricted-party list, in force from --effective.
    #[command(
        after_help = "Example:\n  qledger screening import csl-2026-03-02.csv --effective 2026-03-02"
    )]
    Import {
        /// CSV: list, entry_id, name, alt_names (;-separated), country (the whole list)
        file: PathBuf,
        /// First day the snapshot is in force (default: the as-of date; never after it).
        #[arg(long, value_name = "DATE")]
        effective: Option<String>,
    },
    /// Record that a customer is not a listed party (a false positive), with a reason.
    #[command(
        after_help = "Example:\n  qledger screening clear --customer CUST-7 --list \"Entity List\" --entry EL-1234 --reason \"different company: see case 2026-88\""
    )]
    Clear {
        /// The customer.
        #[arg(long)]
        customer: String,
        /// The list (as in the snapshot).
        #[arg(long)]
        list: String,
        /// The entry id (as in the snapshot).
        #[arg(long)]
        entry: String,
        /// Why it is a false positive.
        #[arg(long)]
        reason: String,
    },
    /// List approved customers that are hits or potential matches; exit 1 on an uncleared hit.
    #[command(
        after_help = "Example:\n  qledger screening check || mail -s 'screening hit' compliance@example.com"
    )]
    Check,
}

#[derive(Subcommand)]
enum ImportAction {
    /// Import events from a CSV file.
    Import {
        /// CSV of customer events (customer_id, name, country, status, effective_date,
        /// reference [, kyc_expires_on, end_use_certificate]) or of lot events
        /// (lot_id, chip, units, lab, certificate_id, result, effective_date)
        file: PathBuf,
    },
    /// List them in their state on the as-of date.
    Show {
        /// Only this one (a customer id or a lot id).
        #[arg(long = "id", visible_aliases = ["customer", "lot"], value_name = "ID")]
        id: Option<String>,
        /// table, json or csv (--json means json).
        #[arg(long, value_parser = ["table", "json", "csv"])]
        format: Option<String>,
    },
}

fn main() -> ExitCode {
    quotaledger::trace::start();
    let cli = Cli::parse();
    quotaledger::trace::phase("main", "arguments");
    if cli.quiet {
        if let Ok(mut held) = QUIET.lock() {
            *held = Some(String::new());
        }
    }
    quotaledger::input::reference_import::set_problem_sink(Box::new(|file, problem| {
        write_err(&problem.render(file));
    }));
    let result = run(&cli);
    quotaledger::trace::phase("main", "command");
    let code = match result {
        Ok(code) => code,
        Err(err) => {
            write_err(&without_os_error_numbers(&format!("qledger: {err}")));
            err.exit_code() as u8
        }
    };
    if code != 0 {
        // Quiet only on success: a refusal or error still shows its answer.
        let held = QUIET.lock().ok().and_then(|mut held| held.take());
        if let Some(held) = held {
            if write_out(&held).is_err() {
                return ExitCode::from(4);
            }
        }
    }
    ExitCode::from(code)
}

fn as_of_date(cli: &Cli) -> Result<NaiveDate, Error> {
    match &cli.as_of {
        Some(text) => parse_date(text).map_err(|why| Error::BadInput(format!("--as-of: {why}"))),
        None => quotaledger::store::clock::today(),
    }
}

/// Opens the ledger for a command that can append entries: refuses an
/// as-of date the ledger's clock does not allow before anything else
/// (SPEC §3.14).
fn open_for_write(cli: &Cli, as_of: NaiveDate) -> Result<Ledger, Error> {
    let actor = actor_of(cli)?;
    let mut ledger = Ledger::open(&cli.db)?;
    ledger.check_schema()?;
    ledger.check_write_clock(as_of)?;
    ledger.set_actor(actor);
    Ok(ledger)
}

/// `--actor` (or `QLEDGER_ACTOR`), else `os:` and the login name: 1 to 128
/// characters, no control characters.
fn actor_of(cli: &Cli) -> Result<String, Error> {
    let Some(actor) = &cli.actor else {
        return Ok(quotaledger::store::ledger::default_actor());
    };
    let actor = actor.trim();
    let chars = actor.chars().count();
    if chars == 0 || chars > 128 || actor.chars().any(char::is_control) {
        return Err(Error::BadInput(format!(
            "--actor '{actor}': 1 to 128 characters, no control characters"
        )));
    }
    Ok(actor.to_string())
}

fn parse_period(ledger: &Ledger, text: &str) -> Result<quotaledger::period::Period, Error> {
    commands::parse_period(ledger.settings(), "period", text)
}

fn print_answer(cli: &Cli, answer: &quotaledger::desk::Answer) -> Result<(), Error> {
    if cli.json {
        print_json(&answer.to_json())
    } else {
        write_out(&answer.to_text())
    }
}

fn print_json(value: &serde_json::Value) -> Result<(), Error> {
    write_out(&format!("{value}\n"))
}

fn run(cli: &Cli) -> Result<u8, Error> {
    let as_of = as_of_date(cli)?;
    let code = match &cli.command {
        Command::Init { period, restricted } => init(cli, period, restricted, as_of),
        Command::Policy { action } => policy(cli, action, as_of),
        Command::Customers { action } => customers_or_lots(cli, "customers", action, as_of),
        Command::Lots { action } => customers_or_lots(cli, "lots", action, as_of),
        Command::Supply {
            action: SupplyAction::Import { file },
        } => reference_import::<SupplyAttestation>(cli, file, as_of),
        Command::Screening { action } => screening(cli, action, as_of),
        Command::Token { action } => token(cli, action, as_of),
        Command::History { from, to, format } => history(cli, from, to, format.as_deref(), as_of),
        Command::Export { from, to, format } => export(cli, *from, *to, format.as_deref()),
        Command::Sales {
            period,
            chip,
            market,
            format,
        } => {
            let (chip, market) = (chip.as_deref(), market.as_deref());
            sales_listing(cli, period, chip, market, format.as_deref(), as_of)
        }
        Command::Import { args } => import_command(cli, args, as_of),
        Command::Check { request } => check(cli, request, as_of),
        Command::Reserve {
            order_ref,
            request,
            ttl_days,
        } => reserve(cli, order_ref, request, *ttl_days, as_of),
        Command::Release { order_ref } => release(cli, order_ref, as_of),
        Command::Report { period, format } => report(cli, period, format.as_deref(), as_of),
        Command::Remit { args } => remit_command(cli, args, as_of),
        Command::Close { period } => close(cli, period, as_of),
        Command::Verify {
            digest,
            checkpoint,
            trust,
        } => verify(cli, digest, checkpoint, trust),
        Command::Keygen { out } => keygen(cli, out),
        Command::Checkpoint { key, out } => checkpoint(cli, key, out.as_deref()),
        Command::Digest => digest(cli),
        Command::Completions { shell } => completions(*shell),
        Command::Serve { args } => serve(cli, args),
        Command::Holds {
            active,
            order_ref,
            format,
        } => holds(cli, *active, order_ref.as_deref(), format.as_deref(), as_of),
        Command::Payments { period, format } => {
            payments_listing(cli, period.as_deref(), format.as_deref(), as_of)
        }
    };
    // An environment or integrity error names the ledger file it concerns.
    code.map_err(|err| err.concerning(&cli.db))
}

/// `policy import|show|withdraw`.
fn policy(cli: &Cli, action: &PolicyAction, as_of: NaiveDate) -> Result<u8, Error> {
    match action {
        PolicyAction::Import { file } => reference_import::<PolicyVersion>(cli, file, as_of),
        PolicyAction::Show => policy_show(cli),
        PolicyAction::Withdraw {
            chip,
            effective_from,
            reason,
        } => policy_withdraw(cli, chip, effective_from, reason, as_of),
    }
}

/// `customers import|show` and `lots import|show` (`what` says which).
fn customers_or_lots(
    cli: &Cli,
    what: &str,
    action: &ImportAction,
    as_of: NaiveDate,
) -> Result<u8, Error> {
    match (action, what) {
        (ImportAction::Import { file }, "customers") => {
            reference_import::<CustomerEvent>(cli, file, as_of)
        }
        (ImportAction::Import { file }, _) => reference_import::<LotEvent>(cli, file, as_of),
        (ImportAction::Show { id, format }, _) => {
            show_reference(cli, what, id.as_deref(), format.as_deref(), as_of)
        }
    }
}

/// `screening import|clear|check`.
fn screening(cli: &Cli, action: &ScreeningAction, as_of: NaiveDate) -> Result<u8, Error> {
    match action {
        ScreeningAction::Import { file, effective } => {
            screening_import(cli, file, effective.as_deref(), as_of)
        }
        ScreeningAction::Clear {
            customer,
            list,
            entry,
            reason,
        } => screening_clear(cli, customer, list, entry, reason, as_of),
        ScreeningAction::Check => screening_check(cli, as_of),
    }
}

/// `token issue|revoke|list`.
fn token(cli: &Cli, action: &TokenAction, as_of: NaiveDate) -> Result<u8, Error> {
    match action {
        TokenAction::Issue {
            name,
            role,
            expires_on,
        } => token_issue(cli, name, role, expires_on.as_deref(), as_of),
        TokenAction::Revoke { name } => token_revoke(cli, name, as_of),
        TokenAction::List => token_list(cli),
    }
}

/// `import FILE [options]`.
fn import_command(cli: &Cli, args: &ImportArgs, as_of: NaiveDate) -> Result<u8, Error> {
    let ImportArgs {
        file,
        dry_run,
        partial,
        rejects,
        accept_violations,
        late,
        reason,
    } = args;
    let options = commands::sales_import_options(
        as_of,
        *dry_run,
        *partial,
        *accept_violations,
        *late,
        reason.as_deref(),
        rejects.clone(),
    )?;
    sales_import(cli, file, rejects.as_deref(), &options)
}

/// `remit` (a payment) and `remit --reverse` (its reversal).
fn remit_command(cli: &Cli, args: &RemitArgs, as_of: NaiveDate) -> Result<u8, Error> {
    match args {
        RemitArgs {
            period,
            amount: Some(amount),
            paid_on: Some(paid_on),
            reference,
            reverse: false,
            reason: _,
        } => remit(cli, period, amount, paid_on, reference, as_of),
        RemitArgs {
            period,
            reference,
            reason: Some(reason),
            reverse: true,
            ..
        } => remit_reverse(cli, period, reference, reason, as_of),
        _ => Err(Error::BadInput(
            "remit takes --amount and --paid-on, or --reverse with --reason".to_string(),
        )),
    }
}

/// `serve`: the library's service with the command's options.
fn serve(cli: &Cli, args: &ServeArgs) -> Result<u8, Error> {
    let ServeArgs {
        listen,
        tls_cert,
        tls_key,
        signing_key,
        insecure_http,
        trust_client_as_of,
    } = args;
    quotaledger::service::serve(quotaledger::service::ServeOptions {
        db: cli.db.clone(),
        listen: listen.clone(),
        tls: tls_cert.clone().zip(tls_key.clone()),
        signing_key: signing_key.clone(),
        insecure_http: *insecure_http,
        trust_client_as_of: *trust_client_as_of,
    })
    .map(|()| 0)
}

fn parse_order_ref(order_ref: &str) -> Result<String, Error> {
    commands::parse_order_ref(order_ref)
}

fn check(cli: &Cli, request: &RequestArgs, as_of: NaiveDate) -> Result<u8, Error> {
    let request = request.parse()?;
    let ledger = Ledger::open_read_only(&cli.db)?;
    let answer = quotaledger::desk::check(&ledger, &request, as_of)?;
    print_answer(cli, &answer)?;
    Ok(if answer.allowed { 0 } else { 1 })
}

fn reserve(
    cli: &Cli,
    order_ref: &str,
    request: &RequestArgs,
    ttl_days: i64,
    as_of: NaiveDate,
) -> Result<u8, Error> {
    let order_ref = parse_order_ref(order_ref)?;
    let request = request.parse()?;
    let mut ledger = open_for_write(cli, as_of)?;
    let answer = quotaledger::desk::reserve(&mut ledger, &order_ref, &request, ttl_days, as_of)?;
    print_answer(cli, &answer)?;
    Ok(if answer.allowed { 0 } else { 1 })
}

fn release(cli: &Cli, order_ref: &str, as_of: NaiveDate) -> Result<u8, Error> {
    let order_ref = parse_order_ref(order_ref)?;
    let mut ledger = open_for_write(cli, as_of)?;
    let released = quotaledger::desk::release(&mut ledger, &order_ref, as_of)?;
    if cli.json {
        print_json(&commands::released_json(&released))?;
    } else if released.already_ended {
        outln!(
            "order {}: its hold had already ended; nothing released",
            released.order_ref
        );
    } else {
        outln!(
            "order {}: released {} units",
            released.order_ref,
            released.released_units
        );
    }
    Ok(0)
}

/// The report format: `--format`, or json with `--json` (SPEC §5).
fn report_format(cli: &Cli, format: Option<&str>) -> Result<String, Error> {
    match (cli.json, format.map(str::to_ascii_lowercase)) {
        (true, None) => Ok("json".to_string()),
        (true, Some(f)) if f == "json" => Ok(f),
        (true, Some(f)) => Err(Error::BadInput(format!(
            "--json asks for JSON but --format asks for {f}"
        ))),
        (false, None) => Ok("table".to_string()),
        (false, Some(f)) if ["table", "json", "csv", "html"].contains(&f.as_str()) => Ok(f),
        (false, Some(f)) => Err(Error::BadInput(format!(
            "--format {f}: table, json, csv or html"
        ))),
    }
}

fn report(cli: &Cli, period: &str, format: Option<&str>, as_of: NaiveDate) -> Result<u8, Error> {
    let format = report_format(cli, format)?;
    let ledger = Ledger::open_read_only(&cli.db)?;
    ledger.check_schema()?;
    let period = parse_period(&ledger, period)?;
    let report = quotaledger::report::report(&ledger, period, as_of)?;
    match format.as_str() {
        "json" => print_json(&report.to_json())?,
        "html" => {
            use quotaledger::report::html;
            let series = html::cap_series(ledger.conn(), ledger.settings(), &report)?;
            write_out(&html::page(&report.to_json(), &series))?
        }
        "csv" => write_out(&report.to_csv())?,
        _ => write_out(&report.to_table())?,
    }
    Ok(0)
}

fn history(
    cli: &Cli,
    from: &str,
    to: &str,
    format: Option<&str>,
    as_of: NaiveDate,
) -> Result<u8, Error> {
    let format = report_format(cli, format)?;
    let ledger = Ledger::open_read_only(&cli.db)?;
    ledger.check_schema()?;
    let from = parse_period(&ledger, from)?;
    let to = parse_period(&ledger, to)?;
    let reports = quotaledger::report::history::history(&ledger, from, to, as_of)?;
    use quotaledger::report::history;
    match format.as_str() {
        "json" => print_json(&history::to_json(&reports))?,
        "csv" => write_out(&history::to_csv(&reports))?,
        "html" => write_out(&quotaledger::report::html::history_page(&history::to_json(
            &reports,
        )))?,
        _ => write_out(&history::to_table(&reports, as_of))?,
    }
    Ok(0)
}

fn export(
    cli: &Cli,
    from: Option<i64>,
    to: Option<i64>,
    format: Option<&str>,
) -> Result<u8, Error> {
    use quotaledger::report::export::{export as export_entries, ExportFormat};
    let format = match (cli.json, format) {
        (true, Some("csv")) => {
            return Err(Error::BadInput(
                "--json means --format jsonl; it contradicts --format csv".to_string(),
            ))
        }
        (_, Some("csv")) => ExportFormat::Csv,
        _ => ExportFormat::Jsonl,
    };
    let (from, to) = commands::export_range(from, to)?;
    let ledger = Ledger::open_read_only(&cli.db)?;
    ledger.check_schema()?;
    let conn = ledger.conn();
    conn.execute_batch("BEGIN DEFERRED")?;
    let exported = if cli.quiet {
        export_entries(conn, from, to, format, &mut std::io::sink())
    } else {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
        export_entries(conn, from, to, format, &mut out)
    };
    conn.execute_batch("COMMIT")?;
    exported?;
    Ok(0)
}

fn remit(
    cli: &Cli,
    period: &str,
    amount: &str,
    paid_on: &str,
    reference: &str,
    as_of: NaiveDate,
) -> Result<u8, Error> {
    let mut ledger = open_for_write(cli, as_of)?;
    let payment = commands::remit(&mut ledger, period, amount, paid_on, reference, as_of)?;
    if cli.json {
        print_json(&payment.to_json())?;
        return Ok(0);
    }
    let commands::Payment {
        period,
        amount,
        paid_on,
        reference,
        remitted,
    } = payment;
    let paid_on = format_date(paid_on);
    match remitted {
        Remitted::Recorded => outln!(
            "recorded a payment of {amount} USD for {period}, paid on {paid_on} (reference '{reference}')"
        ),
        Remitted::Duplicate => outln!(
            "payment '{reference}' of {amount} USD for {period}, paid on {paid_on}, was already recorded; nothing changed"
        ),
    }
    Ok(0)
}

fn remit_reverse(
    cli: &Cli,
    period: &str,
    reference: &str,
    reason: &str,
    as_of: NaiveDate,
) -> Result<u8, Error> {
    let mut ledger = open_for_write(cli, as_of)?;
    let reversal = commands::remit_reverse(&mut ledger, period, reference, reason, as_of)?;
    if cli.json {
        print_json(&reversal.to_json())?;
    } else {
        let commands::Reversal {
            period,
            reference,
            amount,
            reason,
        } = reversal;
        outln!("reversed payment '{reference}' of {period} ({amount} USD): {reason}");
    }
    Ok(0)
}

fn close(cli: &Cli, period: &str, as_of: NaiveDate) -> Result<u8, Error> {
    let mut ledger = open_for_write(cli, as_of)?;
    let closed = commands::close(&mut ledger, period, as_of)?;
    let period = closed.period;
    if cli.json {
        print_json(&commands::closed_json(&closed))?;
    } else if closed.already_closed {
        outln!("{period} was already closed; nothing changed");
    } else {
        outln!("closed {period}; chain head {}", closed.head.digest_text());
    }
    Ok(0)
}

/// The anchors of the checkpoints after checking each one's signature,
/// trust and ledger (the hash of entry 1).
fn checkpoint_anchors(
    db: &Path,
    checkpoints: &[(&PathBuf, Checkpoint)],
    trusted: &[String],
) -> Result<Vec<Anchor>, Error> {
    let mut anchors = Vec::new();
    if checkpoints.is_empty() {
        return Ok(anchors);
    }
    let ledger_id = hex::encode(quotaledger::store::ledger::first_hash(db)?);
    for (path, checkpoint) in checkpoints {
        let anchor = checkpoint.check(path, trusted)?;
        if !checkpoint.ledger_id.eq_ignore_ascii_case(&ledger_id) {
            return Err(Error::Integrity(format!(
                "checkpoint {} is of another ledger (ledger_id {}, this one is {ledger_id})",
                path.display(),
                checkpoint.ledger_id
            )));
        }
        anchors.push(anchor);
    }
    Ok(anchors)
}

fn keygen(cli: &Cli, out: &Path) -> Result<u8, Error> {
    let public = quotaledger::store::checkpoint::keygen(out)?;
    let key_id = quotaledger::store::checkpoint::key_id(&public);
    let public_hex = hex::encode(public.as_bytes());
    if cli.json {
        print_json(&json!({
            "key_file": out.display().to_string(),
            "key_id": key_id,
            "public_key": public_hex,
        }))?;
    } else {
        outln!("wrote a new signing key to {}", out.display());
        outln!("key_id {key_id}");
        outln!("public key {public_hex}");
    }
    Ok(0)
}

fn checkpoint(cli: &Cli, key: &Path, out: Option<&Path>) -> Result<u8, Error> {
    let key = quotaledger::store::checkpoint::read_key(key)?;
    let signed = commands::checkpoint(&cli.db, &key)?;
    let text = serde_json::to_string_pretty(&signed.to_json()).expect("JSON values serialise");
    if let Some(out) = out {
        write_new_file(out, &format!("{text}\n"))?;
    }
    outln!("{text}");
    Ok(0)
}

/// Writes `text` to a new file (an existing one is refused), durably.
fn write_new_file(path: &Path, text: &str) -> Result<(), Error> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::AlreadyExists => Error::BadInput(format!(
                "{} already exists; choose another file",
                path.display()
            )),
            _ => Error::Environment(format!("cannot create {}: {err}", path.display())),
        })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|err| Error::Environment(format!("cannot write {}: {err}", path.display())))
}

fn print_listing(
    cli: &Cli,
    listing: &quotaledger::report::listings::Listing,
    format: Option<&str>,
) -> Result<u8, Error> {
    match listing_format(cli, format)? {
        "json" => print_json(&listing.to_json())?,
        "csv" => write_out(&listing.to_csv()?)?,
        _ => write_out(&listing.to_table())?,
    }
    Ok(0)
}

/// A listing's format: `--format`, or json with `--json`.
fn listing_format(cli: &Cli, format: Option<&str>) -> Result<&'static str, Error> {
    match (cli.json, format) {
        (true, None | Some("json")) | (false, Some("json")) => Ok("json"),
        (true, Some(other)) => Err(Error::BadInput(format!(
            "--json asks for JSON but --format asks for {other}"
        ))),
        (false, Some("csv")) => Ok("csv"),
        (false, _) => Ok("table"),
    }
}

fn holds(
    cli: &Cli,
    active: bool,
    order_ref: Option<&str>,
    format: Option<&str>,
    as_of: NaiveDate,
) -> Result<u8, Error> {
    let order_ref = order_ref.map(parse_order_ref).transpose()?;
    let ledger = Ledger::open_read_only(&cli.db)?;
    let listing = quotaledger::report::listings::holds(
        ledger.conn(),
        ledger.settings(),
        as_of,
        active,
        order_ref.as_deref(),
    )?;
    print_listing(cli, &listing, format)
}

fn show_reference(
    cli: &Cli,
    what: &str,
    id: Option<&str>,
    format: Option<&str>,
    as_of: NaiveDate,
) -> Result<u8, Error> {
    let id = id
        .map(|id| {
            parse_identifier(id.trim()).map_err(|why| Error::BadInput(format!("'{id}' {why}")))
        })
        .transpose()?;
    let ledger = Ledger::open_read_only(&cli.db)?;
    let listing = if what == "customers" {
        quotaledger::report::listings::customers(ledger.conn(), as_of, id.as_deref())?
    } else {
        quotaledger::report::listings::lots(ledger.conn(), ledger.settings(), as_of, id.as_deref())?
    };
    print_listing(cli, &listing, format)
}

fn sales_listing(
    cli: &Cli,
    period: &str,
    chip: Option<&str>,
    market: Option<&str>,
    format: Option<&str>,
    as_of: NaiveDate,
) -> Result<u8, Error> {
    let ledger = Ledger::open_read_only(&cli.db)?;
    let period = parse_period(&ledger, period)?;
    let chip = chip
        .map(|c| parse_chip(c).map_err(|why| Error::BadInput(format!("--chip: {why}"))))
        .transpose()?;
    let market = market
        .map(|m| parse_market(m).map_err(|why| Error::BadInput(format!("--market: {why}"))))
        .transpose()?;
    let listing = quotaledger::report::listings::sales(
        ledger.conn(),
        period,
        as_of,
        chip.as_deref(),
        market.as_deref(),
    )?;
    print_listing(cli, &listing, format)
}

fn payments_listing(
    cli: &Cli,
    period: Option<&str>,
    format: Option<&str>,
    as_of: NaiveDate,
) -> Result<u8, Error> {
    let ledger = Ledger::open_read_only(&cli.db)?;
    let period = period.map(|p| parse_period(&ledger, p)).transpose()?;
    let listing = quotaledger::report::listings::payments(ledger.conn(), as_of, period)?;
    print_listing(cli, &listing, format)
}

fn completions(shell: clap_complete::Shell) -> Result<u8, Error> {
    use clap::CommandFactory;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "qledger", &mut script);
    write_out(&String::from_utf8_lossy(&script))?;
    Ok(0)
}

fn digest(cli: &Cli) -> Result<u8, Error> {
    let ledger = Ledger::open_read_only(&cli.db)?;
    let head = ledger.head()?;
    if cli.json {
        print_json(&commands::digest_json(&head))?;
    } else {
        outln!("{}", head.digest_text());
    }
    Ok(0)
}

fn init(cli: &Cli, period: &str, restricted: &str, as_of: NaiveDate) -> Result<u8, Error> {
    quotaledger::store::clock::check_not_ahead(as_of)?;
    let period_kind =
        PeriodKind::parse(period).map_err(|why| Error::BadInput(format!("--period: {why}")))?;
    let mut markets = Vec::new();
    for part in restricted.split(',') {
        let market = parse_market(part.trim())
            .map_err(|why| Error::BadInput(format!("--restricted: {why}")))?;
        if market == "US" {
            return Err(Error::BadInput(
                "--restricted: US cannot be a restricted market (caps are measured against US sales)"
                    .to_string(),
            ));
        }
        if !markets.contains(&market) {
            markets.push(market);
        }
    }
    markets.sort();
    let settings = Settings {
        period_kind,
        restricted_markets: markets,
    };
    let ledger = Ledger::init(&cli.db, settings, as_of)?;
    let settings = ledger.settings();
    if cli.json {
        print_json(&json!({
            "db": cli.db.display().to_string(),
            "period": settings.period_kind.name(),
            "restricted": settings.restricted_markets,
        }))?;
    } else {
        outln!(
            "initialised {}: {} periods, restricted markets {}",
            cli.db.display(),
            settings.period_kind.name(),
            settings.restricted_markets.join(",")
        );
    }
    Ok(0)
}

fn report_import(cli: &Cli, summary: &ImportSummary, refusal_code: u8) -> Result<u8, Error> {
    // Every problem went to stderr as it was found (`set_problem_sink`).
    if cli.json {
        print_json(&summary.to_json())?;
    } else {
        outln!("{}", summary.to_text());
    }
    Ok(commands::import_code(summary, refusal_code))
}

fn reference_import<T: ReferenceRow>(
    cli: &Cli,
    file: &Path,
    as_of: NaiveDate,
) -> Result<u8, Error> {
    let mut ledger = open_for_write(cli, as_of)?;
    let label = file.display().to_string();
    let summary = import_reference::<T>(&mut ledger, file, &label, as_of)?;
    // Every reference-file problem is bad input (SPEC §4).
    report_import(cli, &summary, 2)
}

fn screening_import(
    cli: &Cli,
    file: &Path,
    effective: Option<&str>,
    as_of: NaiveDate,
) -> Result<u8, Error> {
    let effective = effective
        .map(|text| {
            parse_date(text.trim()).map_err(|why| Error::BadInput(format!("--effective: {why}")))
        })
        .transpose()?;
    let mut ledger = open_for_write(cli, as_of)?;
    let label = file.display().to_string();
    let summary = quotaledger::records::screening::import_snapshot(
        &mut ledger,
        file,
        &label,
        effective,
        as_of,
    )?;
    report_import(cli, &summary, 2)
}

fn screening_clear(
    cli: &Cli,
    customer: &str,
    list: &str,
    entry: &str,
    reason: &str,
    as_of: NaiveDate,
) -> Result<u8, Error> {
    let mut ledger = open_for_write(cli, as_of)?;
    let clearance = commands::screening_clear(&mut ledger, customer, list, entry, reason, as_of)?;
    if cli.json {
        print_json(&commands::clearance_json(&clearance))?;
    } else if clearance.already_cleared {
        outln!(
            "{} was already cleared for {} entry {} ({})",
            clearance.customer_id,
            clearance.list,
            clearance.entry_id,
            clearance.reason
        );
    } else {
        outln!(
            "cleared {} for {} entry {}: {}",
            clearance.customer_id,
            clearance.list,
            clearance.entry_id,
            clearance.reason
        );
    }
    Ok(0)
}

fn token_issue(
    cli: &Cli,
    name: &str,
    role: &str,
    expires_on: Option<&str>,
    as_of: NaiveDate,
) -> Result<u8, Error> {
    use quotaledger::records::tokens::{self, Role};
    let role = Role::parse(role).map_err(|why| Error::BadInput(format!("--role {why}")))?;
    let expires_on = expires_on
        .map(|text| {
            parse_date(text.trim()).map_err(|why| Error::BadInput(format!("--expires-on: {why}")))
        })
        .transpose()?;
    let mut ledger = open_for_write(cli, as_of)?;
    let issued = tokens::issue(&mut ledger, name, role, expires_on, as_of)?;
    if cli.json {
        print_json(&json!({
            "name": issued.token.name,
            "role": issued.token.role.name(),
            "expires_on": issued.token.expires_on.map(format_date),
            "token": issued.secret,
        }))?;
    } else {
        outln!(
            "issued token {} ({}){}; its secret, shown this once:\n{}",
            issued.token.name,
            issued.token.role.name(),
            issued.token.expires_on.map_or(String::new(), |d| format!(
                ", expires on {}",
                format_date(d)
            )),
            issued.secret
        );
    }
    Ok(0)
}

fn token_revoke(cli: &Cli, name: &str, as_of: NaiveDate) -> Result<u8, Error> {
    let mut ledger = open_for_write(cli, as_of)?;
    let revoked = quotaledger::records::tokens::revoke(&mut ledger, name, as_of)?;
    if cli.json {
        print_json(&json!({"name": name.trim(), "revoked": true, "already_ended": !revoked}))?;
    } else if revoked {
        outln!("revoked token {}", name.trim());
    } else {
        outln!("token {} had already ended; nothing changed", name.trim());
    }
    Ok(0)
}

fn token_list(cli: &Cli) -> Result<u8, Error> {
    let ledger = Ledger::open_read_only(&cli.db)?;
    let tokens = quotaledger::records::tokens::all(ledger.conn())?;
    if cli.json {
        let items: Vec<_> = tokens.iter().map(|token| token.to_json()).collect();
        print_json(&json!({ "tokens": items }))?;
        return Ok(0);
    }
    let mut text = String::new();
    for token in &tokens {
        text.push_str(&format!(
            "{} {} issued {} by {}{}{}\n",
            token.name,
            token.role.name(),
            format_date(token.issued_on),
            token.issued_by,
            token
                .expires_on
                .map_or(String::new(), |d| format!(", expires {}", format_date(d))),
            token
                .revoked_on
                .map_or(String::new(), |d| format!(", revoked {}", format_date(d)))
        ));
    }
    text.push_str(&quotaledger::input::reference_import::plural(
        tokens.len() as u64,
        "token",
        "tokens",
    ));
    text.push('\n');
    write_out(&text)?;
    Ok(0)
}

fn screening_check(cli: &Cli, as_of: NaiveDate) -> Result<u8, Error> {
    let ledger = Ledger::open_read_only(&cli.db)?;
    let answer = quotaledger::report::screening::screening_check(ledger.conn(), as_of)?;
    let code = if answer.has_uncleared_hit() { 1 } else { 0 };
    if cli.json {
        print_json(&answer.to_json())?;
        return Ok(code);
    }
    let mut text = String::new();
    for hit in &answer.hits {
        text.push_str(&format!(
            "{} {}: {} ({}) matches {} entry {} ('{}')\n",
            if hit.cleared { "cleared hit" } else { "HIT" },
            format_date(as_of),
            hit.customer_id,
            hit.name,
            hit.list,
            hit.entry_id,
            hit.listed_name
        ));
    }
    for m in &answer.potential {
        text.push_str(&format!(
            "potential match {}: {} ({}) resembles {} entry {} ('{}'); review it\n",
            format_date(as_of),
            m.customer_id,
            m.name,
            m.list,
            m.entry_id,
            m.listed_name
        ));
    }
    text.push_str(&format!(
        "{} on {}, {} uncleared; {}\n",
        quotaledger::input::reference_import::plural(answer.hits.len() as u64, "hit", "hits"),
        format_date(as_of),
        answer.hits.iter().filter(|hit| !hit.cleared).count(),
        quotaledger::input::reference_import::plural(
            answer.potential.len() as u64,
            "potential match",
            "potential matches"
        ),
    ));
    write_out(&text)?;
    Ok(code)
}

fn sales_import(
    cli: &Cli,
    file: &Path,
    rejects: Option<&Path>,
    options: &SalesImportOptions,
) -> Result<u8, Error> {
    let mut ledger = open_for_write(cli, options.as_of)?;
    if let Some(rejects) = rejects {
        let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if same(rejects, file) || same(rejects, &cli.db) {
            return Err(Error::BadInput(format!(
                "--rejects {} would overwrite an input; choose another file",
                rejects.display()
            )));
        }
    }
    let label = file.display().to_string();
    let outcome = with_progress(file, |progress| {
        import_sales(&mut ledger, file, &label, options, progress)
    })?;
    // The rejects file was written inside the import, before its commit.
    report_import(cli, &outcome.summary, 1)?;
    Ok(commands::sales_import_code(&outcome, options.partial))
}

/// Runs `work`, showing a progress bar on stderr while it reads the file,
/// but only when stderr is a terminal (cron's stderr never gets one).
fn with_progress<T>(file: &Path, work: impl FnOnce(Option<&Progress>) -> T) -> T {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return work(None);
    }
    let total_bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let progress = Progress::default();
    let finished = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let bar = indicatif::ProgressBar::new(total_bytes);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:40}] {bytes}/{total_bytes} {elapsed}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            while !finished.load(Ordering::Relaxed) {
                bar.set_message(format!(
                    "import pass {}",
                    progress.pass.load(Ordering::Relaxed)
                ));
                bar.set_position(progress.bytes.load(Ordering::Relaxed));
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            bar.finish_and_clear();
        });
        let result = work(Some(&progress));
        finished.store(true, Ordering::Relaxed);
        result
    })
}

fn policy_withdraw(
    cli: &Cli,
    chip: &str,
    effective_from: &str,
    reason: &str,
    as_of: NaiveDate,
) -> Result<u8, Error> {
    let mut ledger = open_for_write(cli, as_of)?;
    let (answer, reason) = commands::withdraw(&mut ledger, chip, effective_from, reason, as_of)?;
    if cli.json {
        print_json(&answer)?;
    } else {
        outln!(
            "withdrew the policy version of {} from {}: {reason}",
            answer["chip"].as_str().unwrap_or_default(),
            answer["effective_from"].as_str().unwrap_or_default()
        );
    }
    Ok(0)
}

fn policy_show(cli: &Cli) -> Result<u8, Error> {
    let ledger = Ledger::open_read_only(&cli.db)?;
    let versions = versions_for_show(ledger.conn())?;
    if cli.json {
        print_json(&commands::policy_show_json(ledger.conn())?)?;
        return Ok(0);
    }
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    if table.width().is_none() {
        table.set_width(160);
    }
    table.set_header([
        "chip",
        "effective_from",
        "restricted_allowed",
        "cap_ratio",
        "cap_window",
        "remittance_rate",
        "lab_test_required",
        "customer_approval_required",
        "source",
        "us_supply_attestation_required",
        "end_use_certificate_required",
        "withdrawn",
    ]);
    for (v, withdrawn) in &versions {
        table.add_row([
            v.chip.clone(),
            v.effective_from.format("%Y-%m-%d").to_string(),
            v.restricted_allowed.to_string(),
            v.cap.map_or(String::new(), |cap| cap.cap_ratio.to_string()),
            v.cap
                .map_or(String::new(), |cap| cap.cap_window.name().to_string()),
            v.remittance_rate.to_string(),
            v.lab_test_required.to_string(),
            v.customer_approval_required.to_string(),
            v.source.clone(),
            v.us_supply_attestation_required.to_string(),
            v.end_use_certificate_required.to_string(),
            withdrawn.to_string(),
        ]);
    }
    outln!("{table}");
    Ok(0)
}

fn verify(
    cli: &Cli,
    digests: &[String],
    checkpoints: &[PathBuf],
    trusted: &[String],
) -> Result<u8, Error> {
    let mut anchors = Vec::new();
    for text in digests {
        let head = parse_digest(text).map_err(|why| Error::BadInput(format!("--digest: {why}")))?;
        anchors.push(Anchor::digest(head));
    }
    let mut read = Vec::new();
    for path in checkpoints {
        read.push((path, Checkpoint::read(path)?));
    }
    // Not Ledger::open: verify must report on a ledger whose settings were tampered with.
    let report = match checkpoint_anchors(&cli.db, &read, trusted) {
        Ok(checked) => {
            anchors.extend(checked);
            verify_ledger(&cli.db, &anchors)?
        }
        Err(Error::Integrity(message)) => quotaledger::store::verify::VerifyReport {
            entries: 0,
            head: [0; 32],
            first_bad_entry: None,
            message: Some(message),
        },
        Err(other) => return Err(other),
    };
    let head_hex = hex::encode(report.head);
    if report.ok() {
        if cli.json {
            print_json(&commands::verify_json(&report))?;
        } else {
            outln!("ok: {} entries, head {head_hex}", report.entries);
        }
        return Ok(0);
    }
    let message = report.message.clone().unwrap_or_default();
    write_err(&format!("qledger: verify failed: {message}"));
    if cli.json {
        print_json(&commands::verify_json(&report))?;
    } else {
        outln!(
            "FAILED at entry {}: {message}",
            report.first_bad_entry.unwrap_or(0)
        );
    }
    Ok(3)
}
