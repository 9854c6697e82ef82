//! Access tokens of the service (SPEC §6): `token issue`, `token revoke`,
//! `token list`, and the lookup of a bearer secret. A token is an entry
//! holding its name, role, optional expiry and the SHA-256 of its secret
//! (never the secret); a revocation is another entry.

use crate::error::{Error, Result};
use crate::input::values::parse_identifier;
use crate::period::{format_date, parse_date};
use crate::store::entry::TOKEN_EVENT;
use crate::store::ledger::Ledger;
use chrono::NaiveDate;
use rusqlite::types::Value;
use rusqlite::Connection;
use sha2::{Digest, Sha256};

/// What a token's holder may do (SPEC §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Read: reports, history, listings, export, digest, verify, policy, checkpoint.
    Auditor,
    /// An auditor's reads, and check, reserve, release.
    Desk,
    /// An auditor's reads, and sales imports.
    Importer,
    /// Everything.
    Officer,
}

impl Role {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Auditor => "auditor",
            Role::Desk => "desk",
            Role::Importer => "importer",
            Role::Officer => "officer",
        }
    }

    /// Parses a role name (case-insensitive).
    pub fn parse(text: &str) -> std::result::Result<Role, String> {
        match text.to_ascii_lowercase().as_str() {
            "auditor" => Ok(Role::Auditor),
            "desk" => Ok(Role::Desk),
            "importer" => Ok(Role::Importer),
            "officer" => Ok(Role::Officer),
            _ => Err(format!(
                "'{text}' is not a role (desk, importer, officer, auditor)"
            )),
        }
    }
}

/// A token as `token list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenState {
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The as-of date it was issued on.
    pub issued_on: NaiveDate,
    /// First day it no longer works, if any.
    pub expires_on: Option<NaiveDate>,
    /// The as-of date it was revoked on, if it was.
    pub revoked_on: Option<NaiveDate>,
    /// Who issued it.
    pub issued_by: String,
    /// SHA-256 of its secret, hex.
    secret_sha256: String,
}

impl TokenState {
    /// Whether it works on `date`: not revoked, not expired (a token
    /// expires at the start of its `expires_on` date, as holds do).
    pub fn works_on(&self, date: NaiveDate) -> bool {
        self.revoked_on.is_none() && self.expires_on.is_none_or(|expiry| date < expiry)
    }

    /// The `token list` JSON item.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "role": self.role.name(),
            "issued_on": format_date(self.issued_on),
            "expires_on": self.expires_on.map(format_date),
            "revoked_on": self.revoked_on.map(format_date),
            "issued_by": self.issued_by,
        })
    }
}

/// SHA-256 of a secret, lower-case hex.
fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Every token issued, each with its revocation if any, in issue order.
pub fn all(conn: &Connection) -> Result<Vec<TokenState>> {
    states(conn, None)
}

/// The tokens of the names `only_secret` was issued to (all when `None`),
/// from their events in order: the service looks up one secret per
/// request through the `token_event_by_secret` index, not every token.
fn states(conn: &Connection, only_secret: Option<&str>) -> Result<Vec<TokenState>> {
    type Stored = (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
        Option<String>,
    );
    let sql = match only_secret {
        None => {
            "SELECT event, name, role, expires_on, secret_sha256, event_on, actor \
                 FROM token_event ORDER BY seq"
        }
        Some(_) => {
            "SELECT event, name, role, expires_on, secret_sha256, event_on, actor \
                    FROM token_event WHERE name IN \
                    (SELECT name FROM token_event WHERE secret_sha256 = ?1) ORDER BY seq"
        }
    };
    let mut statement = conn.prepare_cached(sql)?;
    let read = |row: &rusqlite::Row<'_>| -> rusqlite::Result<Stored> { row.try_into() };
    let rows: Vec<Stored> = match only_secret {
        None => statement
            .query_map([], read)?
            .collect::<rusqlite::Result<_>>()?,
        Some(secret) => statement
            .query_map([secret], read)?
            .collect::<rusqlite::Result<_>>()?,
    };
    let corrupt = |why: String| Error::Integrity(format!("a stored token event is corrupt: {why}"));
    let mut tokens: Vec<TokenState> = Vec::new();
    for (event, name, role, expires, secret, on, actor) in rows {
        let on = parse_date(&on).map_err(corrupt)?;
        if event == "revoked" {
            if let Some(token) = tokens
                .iter_mut()
                .rev()
                .find(|t| t.name == name && t.revoked_on.is_none())
            {
                token.revoked_on = Some(on);
            }
            continue;
        }
        tokens.push(TokenState {
            role: Role::parse(role.as_deref().unwrap_or_default()).map_err(corrupt)?,
            expires_on: expires
                .as_deref()
                .map(parse_date)
                .transpose()
                .map_err(corrupt)?,
            issued_on: on,
            revoked_on: None,
            issued_by: actor.unwrap_or_default(),
            secret_sha256: secret.unwrap_or_default(),
            name,
        });
    }
    Ok(tokens)
}

/// The token whose secret is `secret`, if it works on `date` (the service's
/// authentication: a missing, unknown, revoked or expired token is `None`).
pub fn authenticate(
    conn: &Connection,
    secret: &str,
    date: NaiveDate,
) -> Result<Option<TokenState>> {
    let wanted = digest(secret);
    Ok(states(conn, Some(&wanted))?
        .into_iter()
        .find(|token| token.secret_sha256 == wanted && token.works_on(date)))
}

/// What `token issue` answers: the only time the secret is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The token.
    pub token: TokenState,
    /// Its secret, for `Authorization: Bearer`.
    pub secret: String,
}

/// `qledger token issue` (SPEC §6).
pub fn issue(
    ledger: &mut Ledger,
    name: &str,
    role: Role,
    expires_on: Option<NaiveDate>,
    as_of: NaiveDate,
) -> Result<Issued> {
    let name =
        parse_identifier(name.trim()).map_err(|why| Error::BadInput(format!("--name {why}")))?;
    if let Some(expiry) = expires_on.filter(|expiry| *expiry <= as_of) {
        return Err(Error::BadInput(format!(
            "--expires-on {} is not after the as-of date {}: the token would never work",
            format_date(expiry),
            format_date(as_of)
        )));
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|err| Error::Environment(format!("no randomness for a token secret: {err}")))?;
    let secret = format!("qlt_{}", hex::encode(bytes));
    ledger.write(as_of, |appender| {
        let taken = all(appender.conn())?
            .into_iter()
            .any(|token| token.name == name && token.works_on(as_of));
        if taken {
            return Err(Error::BadInput(format!(
                "a token named {name} works already; revoke it first (`qledger token revoke --name {name}`)"
            )));
        }
        appender.append(
            &TOKEN_EVENT,
            &[
                Value::Text("issued".to_string()),
                Value::Text(name.clone()),
                Value::Text(role.name().to_string()),
                expires_on.map_or(Value::Null, |d| Value::Text(format_date(d))),
                Value::Text(digest(&secret)),
                Value::Text(format_date(as_of)),
            ],
        )?;
        let token = all(appender.conn())?
            .into_iter()
            .rev()
            .find(|token| token.name == name)
            .ok_or_else(|| Error::Integrity("the token just issued is not found".to_string()))?;
        Ok((Issued { token, secret: secret.clone() }, true))
    })
}

/// `qledger token revoke`: whether a working token was revoked (`false`:
/// it had ended already, nothing appended). A name never issued is bad input.
pub fn revoke(ledger: &mut Ledger, name: &str, as_of: NaiveDate) -> Result<bool> {
    let name = name.trim().to_string();
    ledger.write(as_of, |appender| {
        let tokens = all(appender.conn())?;
        if !tokens.iter().any(|token| token.name == name) {
            return Err(Error::BadInput(format!(
                "no token named {name} was ever issued; `qledger token list` lists them"
            )));
        }
        if !tokens
            .iter()
            .any(|token| token.name == name && token.works_on(as_of))
        {
            return Ok((false, false));
        }
        appender.append(
            &TOKEN_EVENT,
            &[
                Value::Text("revoked".to_string()),
                Value::Text(name.clone()),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Text(format_date(as_of)),
            ],
        )?;
        Ok((true, true))
    })
}
