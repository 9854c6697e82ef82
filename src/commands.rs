//! The commands the command line and the service share (SPEC §5, §6):
//! each parses its arguments as text, named by the CLI option it came
//! from, does its work through the library, and answers with the JSON the
//! CLI prints with `--json`. The binary renders text from the same values;
//! the service sends the JSON. One place, so the two never differ.

use crate::desk::{Released, Request};
use crate::error::{Error, Result};
use crate::input::reference_import::ImportSummary;
use crate::input::values::{parse_chip, parse_identifier, parse_market, parse_text, parse_units};
use crate::money::Usd;
use crate::period::{format_date, parse_date, Period};
use crate::report::payments::Remitted;
use crate::store::ledger::{ChainHead, Ledger, Settings};
use crate::store::verify::VerifyReport;
use chrono::NaiveDate;
use serde_json::{json, Value};

/// Largest payment `remit --amount` takes, in USD.
pub const PAYMENT_USD_MAX: i128 = 1_000_000_000_000_000;

/// A planned shipment from the options of `check` and `reserve`.
pub fn parse_request(
    chip: &str,
    market: &str,
    units: &str,
    date: &str,
    customer: Option<&str>,
    lot: Option<&str>,
) -> Result<Request> {
    let bad = |flag: &str, why: String| Error::BadInput(format!("--{flag}: {why}"));
    let identifier = |flag: &str, text: &str| {
        parse_identifier(text.trim()).map_err(|why| bad(flag, format!("'{text}' {why}")))
    };
    Ok(Request {
        chip: parse_chip(chip).map_err(|why| bad("chip", why))?,
        market: parse_market(market).map_err(|why| bad("market", why))?,
        units: parse_units(units).map_err(|why| bad("units", why))?,
        date: parse_date(date).map_err(|why| bad("date", why))?,
        customer_id: customer.map(|c| identifier("customer", c)).transpose()?,
        lot_id: lot.map(|l| identifier("lot", l)).transpose()?,
    })
}

/// `--order`: an identifier.
pub fn parse_order_ref(order_ref: &str) -> Result<String> {
    parse_identifier(order_ref.trim())
        .map_err(|why| Error::BadInput(format!("--order: '{order_ref}' {why}")))
}

/// `--reason`: non-empty text.
pub fn parse_reason(reason: &str) -> Result<String> {
    parse_text(reason.trim(), true).map_err(|why| Error::BadInput(format!("--reason {why}")))
}

/// `--period` (or `--from`/`--to`, named by `flag`) of the ledger's kind.
pub fn parse_period(settings: &Settings, flag: &str, text: &str) -> Result<Period> {
    Period::parse(settings.period_kind, text.trim())
        .map_err(|why| Error::BadInput(format!("--{flag}: {why}")))
}

/// A date option, named by `flag`.
pub fn parse_date_option(flag: &str, text: &str) -> Result<NaiveDate> {
    parse_date(text.trim()).map_err(|why| Error::BadInput(format!("--{flag}: {why}")))
}

/// The exit code of an import: 0 clean, 2 when a row was malformed, else
/// `refusal_code` (1 for sales, 2 for reference files, SPEC §4, §5).
pub fn import_code(summary: &ImportSummary, refusal_code: u8) -> u8 {
    if summary.errors.is_empty() {
        0
    } else if summary.has_malformed() {
        2
    } else {
        refusal_code
    }
}

/// `release` JSON.
pub fn released_json(released: &Released) -> Value {
    json!({
        "order_ref": released.order_ref,
        "released_units": released.released_units,
        "already_ended": released.already_ended,
    })
}

/// A recorded (or repeated) payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// The period paid for.
    pub period: Period,
    /// The amount.
    pub amount: Usd,
    /// When it was paid.
    pub paid_on: NaiveDate,
    /// The payment's reference.
    pub reference: String,
    /// Recorded now, or already before.
    pub remitted: Remitted,
}

impl Payment {
    /// `remit` JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "period": self.period.to_string(),
            "amount_usd": self.amount.to_string(),
            "paid_on": format_date(self.paid_on),
            "reference": self.reference,
        })
    }
}

/// `remit --period --amount --paid-on --reference`.
pub fn remit(
    ledger: &mut Ledger,
    period: &str,
    amount: &str,
    paid_on: &str,
    reference: &str,
    as_of: NaiveDate,
) -> Result<Payment> {
    let period = parse_period(ledger.settings(), "period", period)?;
    let amount = Usd::parse(amount.trim(), PAYMENT_USD_MAX)
        .map_err(|why| Error::BadInput(format!("--amount: {why}")))?;
    let paid_on = parse_date_option("paid-on", paid_on)?;
    let reference = parse_text(reference.trim(), true)
        .map_err(|why| Error::BadInput(format!("--reference {why}")))?;
    let remitted =
        crate::report::payments::remit(ledger, period, amount, paid_on, &reference, as_of)?;
    Ok(Payment {
        period,
        amount,
        paid_on,
        reference,
        remitted,
    })
}

/// A payment reversed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reversal {
    /// The period.
    pub period: Period,
    /// The reversed payment's reference.
    pub reference: String,
    /// Its amount.
    pub amount: Usd,
    /// Why.
    pub reason: String,
}

impl Reversal {
    /// `remit --reverse` JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "period": self.period.to_string(),
            "reference": self.reference,
            "reversed_amount_usd": self.amount.to_string(),
            "reason": self.reason,
        })
    }
}

/// `remit --reverse --period --reference --reason`.
pub fn remit_reverse(
    ledger: &mut Ledger,
    period: &str,
    reference: &str,
    reason: &str,
    as_of: NaiveDate,
) -> Result<Reversal> {
    let period = parse_period(ledger.settings(), "period", period)?;
    let reference = parse_text(reference.trim(), true)
        .map_err(|why| Error::BadInput(format!("--reference {why}")))?;
    let reason = parse_reason(reason)?;
    let amount = crate::report::payments::reverse(ledger, period, &reference, &reason, as_of)?;
    Ok(Reversal {
        period,
        reference,
        amount,
        reason,
    })
}

/// `close` JSON.
pub fn closed_json(closed: &crate::report::Closed) -> Value {
    json!({
        "period": closed.period.to_string(),
        "already_closed": closed.already_closed,
        "entries": closed.head.entries,
        "head": closed.head.hash_hex(),
    })
}

/// `close --period`.
pub fn close(ledger: &mut Ledger, period: &str, as_of: NaiveDate) -> Result<crate::report::Closed> {
    let period = parse_period(ledger.settings(), "period", period)?;
    crate::report::close(ledger, period, as_of)
}

/// `policy withdraw --chip --effective-from --reason`; answers its JSON
/// and the reason.
pub fn withdraw(
    ledger: &mut Ledger,
    chip: &str,
    effective_from: &str,
    reason: &str,
    as_of: NaiveDate,
) -> Result<(Value, String)> {
    let chip = parse_chip(chip).map_err(|why| Error::BadInput(format!("--chip: {why}")))?;
    let effective_from = parse_date_option("effective-from", effective_from)?;
    let reason = parse_reason(reason)?;
    let withdrawn =
        crate::records::policy::withdraw(ledger, &chip, effective_from, &reason, as_of)?;
    let json = json!({
        "chip": withdrawn.chip,
        "effective_from": format_date(withdrawn.effective_from),
        "withdrawn": true,
    });
    Ok((json, reason))
}

/// `screening clear --customer --list --entry --reason`.
pub fn screening_clear(
    ledger: &mut Ledger,
    customer: &str,
    list: &str,
    entry: &str,
    reason: &str,
    as_of: NaiveDate,
) -> Result<crate::records::screening::Clearance> {
    if reason.trim().is_empty() {
        return Err(Error::BadInput(
            "--reason must say why this is a false positive".to_string(),
        ));
    }
    crate::records::screening::clear(
        ledger,
        customer.trim(),
        list.trim(),
        entry.trim(),
        reason.trim(),
        as_of,
    )
}

/// `screening clear` JSON.
pub fn clearance_json(clearance: &crate::records::screening::Clearance) -> Value {
    json!({
        "customer_id": clearance.customer_id,
        "list": clearance.list,
        "entry_id": clearance.entry_id,
        "reason": clearance.reason,
        "already_cleared": clearance.already_cleared,
    })
}

/// `digest` JSON.
pub fn digest_json(head: &ChainHead) -> Value {
    json!({"entries": head.entries, "head": head.hash_hex()})
}

/// `verify` JSON.
pub fn verify_json(report: &VerifyReport) -> Value {
    let head = hex::encode(report.head);
    if report.ok() {
        return json!({"ok": true, "entries": report.entries, "head": head});
    }
    json!({
        "ok": false,
        "entries": report.entries,
        "head": head,
        "first_bad_entry": report.first_bad_entry,
        "message": report.message.clone().unwrap_or_default(),
    })
}

/// `policy show` JSON: every version, withdrawn ones marked.
pub fn policy_show_json(conn: &rusqlite::Connection) -> Result<Value> {
    let versions = crate::records::policy::versions_for_show(conn)?;
    let items: Vec<_> = versions
        .iter()
        .map(|(v, withdrawn)| {
            json!({
                "chip": v.chip,
                "effective_from": format_date(v.effective_from),
                "restricted_allowed": v.restricted_allowed,
                "cap_ratio": v.cap.map(|cap| cap.cap_ratio.to_string()),
                "cap_window": v.cap.map(|cap| cap.cap_window.name()),
                "remittance_rate": v.remittance_rate.to_string(),
                "lab_test_required": v.lab_test_required,
                "customer_approval_required": v.customer_approval_required,
                "source": v.source,
                "us_supply_attestation_required": v.us_supply_attestation_required,
                "end_use_certificate_required": v.end_use_certificate_required,
                "withdrawn": withdrawn,
            })
        })
        .collect();
    Ok(json!({ "versions": items }))
}

/// `export --from --to`: the entry range, checked.
pub fn export_range(from: Option<i64>, to: Option<i64>) -> Result<(i64, i64)> {
    let (from, to) = (from.unwrap_or(1), to.unwrap_or(i64::MAX));
    if from < 1 || to < from {
        return Err(Error::BadInput(format!(
            "--from {from} --to {to}: entries are numbered from 1, and --to may not be before --from"
        )));
    }
    Ok((from, to))
}

/// The options of `import` (sales), checked as the CLI checks them:
/// `reason` goes with `accept_violations` or `late`, and each of those
/// needs a non-empty one.
#[allow(clippy::too_many_arguments)]
pub fn sales_import_options(
    as_of: NaiveDate,
    dry_run: bool,
    partial: bool,
    accept_violations: bool,
    late: bool,
    reason: Option<&str>,
    rejects_path: Option<std::path::PathBuf>,
) -> Result<crate::input::sales_import::SalesImportOptions> {
    if reason.is_some() && !accept_violations && !late {
        return Err(Error::BadInput(
            "--reason goes with --accept-violations or --late".to_string(),
        ));
    }
    if (accept_violations || late) && reason.is_none_or(|r| r.trim().is_empty()) {
        return Err(Error::BadInput(
            "--reason must say why the rows are recorded".to_string(),
        ));
    }
    let reason = reason.map(|r| r.trim().to_string());
    Ok(crate::input::sales_import::SalesImportOptions {
        as_of,
        dry_run,
        partial,
        accept_reason: reason.clone().filter(|_| accept_violations),
        careful_only: false,
        kept_bytes_max: crate::input::kept_rows::KEPT_BYTES_MAX,
        late_reason: reason.filter(|_| late),
        rejects_path,
    })
}

/// The exit code of a sales import: `import_code`, and 1 whenever
/// `--partial` rejected a row of a readable file.
pub fn sales_import_code(outcome: &crate::input::sales_import::SalesImport, partial: bool) -> u8 {
    let code = import_code(&outcome.summary, 1);
    if partial && !outcome.file_level && outcome.summary.rejected > 0 {
        return 1;
    }
    code
}

/// `checkpoint`: every check of `verify` first (a ledger that does not
/// verify is never signed, exit 3), then the signed statement of its head.
pub fn checkpoint(
    db: &std::path::Path,
    key: &ed25519_dalek::SigningKey,
) -> Result<crate::store::checkpoint::Checkpoint> {
    let report = crate::store::verify::verify_ledger(db, &[])?;
    if !report.ok() {
        let message = report.message.unwrap_or_default();
        return Err(Error::Integrity(format!(
            "verify failed, so no checkpoint is signed: {message}"
        )));
    }
    let head = ChainHead {
        entries: report.entries,
        hash: report.head,
    };
    let ledger_id = crate::store::ledger::first_hash(db)?;
    Ok(crate::store::checkpoint::Checkpoint::sign(
        key, &ledger_id, head,
    ))
}
