//! The ledger file: create, open, append entries to the hash chain, read
//! the chain head, verify the whole chain.

use crate::error::{Error, Result};
use crate::period::{format_date, PeriodKind};
use crate::store::clock;
use crate::store::entry::{self, EntryKind, Hash, ALL_KINDS, LEDGER_SETTINGS};
use chrono::NaiveDate;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The schema, embedded in the binary.
pub const SCHEMA_SQL: &str = include_str!("../../schema.sql");
/// `PRAGMA application_id` of a qledger file ('QLGR').
pub const APPLICATION_ID: i64 = 0x514C_4752;
/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = 5;
/// How long a writer waits for another writer before giving up (exit 4),
/// unless `QLEDGER_BUSY_TIMEOUT_MS` says otherwise. Long enough for a
/// nightly import of a few million rows to commit.
pub const BUSY_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

/// SQLite page size set at `init`: against 4 KiB, a 1M-row import takes
/// about 20% less time and far fewer write syscalls (`benches/import.rs`),
/// while the order desk's small commits stay small.
pub const PAGE_BYTES: i64 = 16384;

/// Ledger-wide settings, fixed at `init` (entry 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Month or quarter.
    pub period_kind: PeriodKind,
    /// The restricted market group, upper-case, sorted.
    pub restricted_markets: Vec<String>,
}

/// Which group a market belongs to (SPEC §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarketGroup {
    /// The United States.
    Us,
    /// The restricted group (CN, HK, MO by default).
    Restricted,
    /// Everything else: recorded, never counted.
    Other,
}

impl Settings {
    /// The group of an upper-case market code.
    pub fn market_group(&self, market: &str) -> MarketGroup {
        if market == "US" {
            MarketGroup::Us
        } else if self.restricted_markets.iter().any(|m| m == market) {
            MarketGroup::Restricted
        } else {
            MarketGroup::Other
        }
    }
}

/// The chain head: how many entries there are and the hash of the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    /// Number of entries (= seq of the last one).
    pub entries: i64,
    /// Hash of the last entry (genesis hash when empty).
    pub hash: Hash,
}

impl ChainHead {
    /// The head of an empty chain.
    pub const GENESIS: ChainHead = ChainHead {
        entries: 0,
        hash: crate::store::entry::GENESIS_HASH,
    };

    /// The hash as lower-case hex.
    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash)
    }

    /// `N:HEX`, the form `verify --digest` takes.
    pub fn digest_text(&self) -> String {
        format!("{}:{}", self.entries, self.hash_hex())
    }
}

/// Parses a digest `N:HEX` as printed by `qledger digest`.
pub fn parse_digest(text: &str) -> std::result::Result<ChainHead, String> {
    let (entries, hash_hex) = text
        .split_once(':')
        .ok_or_else(|| format!("'{text}' is not a digest (N:HEX, as printed by qledger digest)"))?;
    let entries: i64 = entries
        .parse()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| format!("'{entries}' is not an entry count (a whole number from 1)"))?;
    let bytes = hex::decode(hash_hex.to_ascii_lowercase())
        .ok()
        .filter(|b| b.len() == 32)
        .ok_or_else(|| format!("'{hash_hex}' is not a SHA-256 hash (64 hex digits)"))?;
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&bytes);
    Ok(ChainHead { entries, hash })
}

thread_local! {
    static BUSY_SINCE: Cell<Option<Instant>> = const { Cell::new(None) };
    static BUSY_TIMEOUT: Cell<Duration> = const { Cell::new(BUSY_TIMEOUT_DEFAULT) };
}

/// SQLite's default handler backs off to 100 ms sleeps; waiters then sleep
/// long after the lock is free. Poll often instead: 0.1 ms at first, never
/// more than 2 ms, until the timeout.
fn busy_handler(attempt: i32) -> bool {
    let now = Instant::now();
    if attempt == 0 {
        BUSY_SINCE.with(|since| since.set(Some(now)));
    }
    let since = BUSY_SINCE.with(|since| since.get()).unwrap_or(now);
    if now.duration_since(since) >= BUSY_TIMEOUT.with(|t| t.get()) {
        return false;
    }
    // The longer a writer has waited, the more often it polls: when the
    // lock comes free, the writer that has waited longest most likely takes
    // it, not a newcomer (SQLite's lock has no queue).
    let waited = now.duration_since(since);
    let pause_us = if waited < Duration::from_millis(25) {
        2_000
    } else if waited < Duration::from_millis(75) {
        400
    } else {
        50
    };
    let _ = attempt;
    std::thread::sleep(Duration::from_micros(pause_us));
    true
}

fn configure(conn: &Connection) -> Result<()> {
    if let Some(ms) = std::env::var("QLEDGER_BUSY_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        BUSY_TIMEOUT.with(|t| t.set(Duration::from_millis(ms)));
    }
    conn.busy_handler(Some(busy_handler))?;
    // A financial ledger: every commit is durable before we say "done".
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    // Writers checkpoint themselves right after their commit (see
    // `Ledger::write`), outside the write lock.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    // The rules run some sixty distinct statements; rusqlite keeps 16 by
    // default, and a long-lived connection (the service's writer and
    // readers) would parse them again on every request.
    conn.set_prepared_statement_cache_capacity(STATEMENTS_CACHED_MAX);
    Ok(())
}

/// Prepared statements each connection keeps.
const STATEMENTS_CACHED_MAX: usize = 256;

/// An open ledger.
pub struct Ledger {
    conn: Connection,
    path: PathBuf,
    settings: Settings,
    /// Who is acting: recorded with every entry a command appends as its
    /// own act (SPEC §7).
    actor: String,
    /// Inside `begin_group` … `commit_group`: each `write` is a savepoint
    /// of the group's one transaction (the service's group commit).
    in_group: bool,
}

impl Ledger {
    /// Creates a new ledger at `path`; refuses an existing file. The file
    /// appears complete or not at all (built aside, then linked in place).
    pub fn init(path: &Path, settings: Settings, as_of: NaiveDate) -> Result<Ledger> {
        if path.exists() {
            return Err(Error::BadInput(format!(
                "{} already exists; init never overwrites a file",
                path.display()
            )));
        }
        for leftover in [wal_path(path), shm_path(path)] {
            if leftover.exists() {
                return Err(Error::BadInput(format!(
                    "{} exists beside {}: it belongs to an earlier ledger at this path and a new \
                     ledger would inherit it; move it away (or restore the ledger it belongs to) \
                     before init",
                    leftover.display(),
                    path.display()
                )));
            }
        }
        let file_name = path
            .file_name()
            .ok_or_else(|| Error::BadInput(format!("{} is not a file path", path.display())))?;
        let staging = path.with_file_name(format!(
            ".{}.init-{}.tmp",
            file_name.to_string_lossy(),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&staging);
        let result = Self::build_new(&staging, &settings, as_of).and_then(|()| {
            std::fs::hard_link(&staging, path).map_err(|err| {
                if err.kind() == std::io::ErrorKind::AlreadyExists {
                    Error::BadInput(format!(
                        "{} already exists; init never overwrites a file",
                        path.display()
                    ))
                } else {
                    Error::Environment(format!("cannot create {}: {err}", path.display()))
                }
            })
        });
        let _ = std::fs::remove_file(&staging);
        result?;
        Ledger::open(path)
    }

    fn build_new(staging: &Path, settings: &Settings, as_of: NaiveDate) -> Result<()> {
        let conn = Connection::open(staging)?;
        // Before the first table exists (see `PAGE_BYTES`).
        conn.pragma_update(None, "page_size", PAGE_BYTES)?;
        configure(&conn)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Environment(format!(
                "cannot switch {} to WAL mode (got {mode})",
                staging.display()
            )));
        }
        conn.execute_batch(SCHEMA_SQL)?;
        let mut ledger = Ledger {
            conn,
            path: staging.to_path_buf(),
            settings: settings.clone(),
            actor: default_actor(),
            in_group: false,
        };
        ledger.write(as_of, |appender| {
            appender.append(
                &LEDGER_SETTINGS,
                &[
                    Value::Integer(SCHEMA_VERSION),
                    Value::Text(settings.period_kind.name().to_string()),
                    Value::Text(settings.restricted_markets.join(",")),
                    Value::Text(format_date(as_of)),
                ],
            )?;
            Ok(((), true))
        })?;
        // The file is linked into place alone: everything must be in it.
        let (busy, _, _): (i64, i64, i64) =
            ledger
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?;
        drop(ledger);
        if busy != 0
            || wal_path(staging)
                .metadata()
                .is_ok_and(|meta| meta.len() > 0)
        {
            return Err(Error::Environment(format!(
                "{}: the new ledger could not be written out completely",
                staging.display()
            )));
        }
        Ok(())
    }

    /// Opens an existing, initialised ledger. Never creates a file.
    pub fn open(path: &Path) -> Result<Ledger> {
        Ledger::open_as(path, Access::Write)
    }

    /// Opens an existing ledger for a read-only command: read-only and
    /// immutable where this user cannot write it (an evidence copy on
    /// read-only media, or another user's ledger).
    pub fn open_read_only(path: &Path) -> Result<Ledger> {
        Ledger::open_as(path, Access::Read)
    }

    fn open_as(path: &Path, access: Access) -> Result<Ledger> {
        let conn = open_connection_as(path, access).map_err(|err| err.concerning(path))?;
        crate::trace::phase("open", "connection");
        let settings = read_settings(&conn).map_err(|err| match err {
            Error::Integrity(why) => Error::Integrity(format!(
                "{}: the settings entry cannot be read ({why}); run qledger verify",
                path.display()
            )),
            other => other.concerning(path),
        })?;
        crate::trace::phase("open", "settings");
        Ok(Ledger {
            conn,
            path: path.to_path_buf(),
            settings,
            actor: default_actor(),
            in_group: false,
        })
    }

    /// Sets who is acting (`--actor`, `QLEDGER_ACTOR`, `token:<name>`).
    pub fn set_actor(&mut self, actor: String) {
        self.actor = actor;
    }

    /// The ledger's settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, for reads.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The current chain head.
    pub fn head(&self) -> Result<ChainHead> {
        read_head(&self.conn)
    }

    /// Runs `work` in one write transaction (`BEGIN IMMEDIATE`, so the
    /// write lock is taken before anything is read; SQLite's busy handler
    /// waits for it). `work` returns its result and whether to commit; on
    /// `false` or an error nothing is written. After a commit the WAL is
    /// copied into the ledger file, so the file alone holds every entry.
    pub fn write<T>(
        &mut self,
        as_of: NaiveDate,
        work: impl FnOnce(&mut Appender<'_>) -> Result<(T, bool)>,
    ) -> Result<T> {
        let path = self.path.clone();
        self.write_unnamed(as_of, work)
            .map_err(|err| err.concerning(&path))
    }

    /// Refuses (exit 3) a ledger whose schema is not the embedded one
    /// (SPEC §3.15 item 2): commands that write, and `report`, call it first.
    pub fn check_schema(&self) -> Result<()> {
        crate::store::schema::check(&self.conn).map_err(|err| err.concerning(&self.path))
    }

    /// Refuses an as-of date a write may not use (SPEC §3.14, `clock`):
    /// commands that can append call it first, before anything else, and
    /// `write` checks again under the write lock.
    pub fn check_write_clock(&self, as_of: NaiveDate) -> Result<()> {
        clock::check_write_as_of(&self.conn, as_of).map_err(|err| err.concerning(&self.path))
    }

    /// Starts a group commit (SPEC §6): one write transaction in which
    /// every `write` until `commit_group` is a savepoint, judged against
    /// everything written before it in the group. Nothing is durable
    /// until `commit_group`.
    pub fn begin_group(&mut self) -> Result<()> {
        assert!(!self.in_group, "groups do not nest");
        let path = self.path.clone();
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|err| Error::from(err).concerning(&path))?;
        self.in_group = true;
        Ok(())
    }

    /// Commits the group's transaction (one fsync for every write in it),
    /// then copies it into the ledger file as `write` does.
    pub fn commit_group(&mut self) -> Result<()> {
        assert!(self.in_group, "commit_group without begin_group");
        self.in_group = false;
        if let Err(err) = self.conn.execute_batch("COMMIT") {
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(Error::from(err).concerning(&self.path));
        }
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        Ok(())
    }

    /// Abandons the group: nothing of it is written.
    pub fn rollback_group(&mut self) {
        if self.in_group {
            self.in_group = false;
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    /// Whether a group is open.
    pub fn in_group(&self) -> bool {
        self.in_group
    }

    /// One `write` inside a group: a savepoint, released on commit and
    /// rolled back on refusal or error.
    fn write_in_group<T>(
        &mut self,
        as_of: NaiveDate,
        work: impl FnOnce(&mut Appender<'_>) -> Result<(T, bool)>,
    ) -> Result<T> {
        self.conn.execute_batch("SAVEPOINT group_write")?;
        let outcome = (|| {
            clock::check_write_as_of(&self.conn, as_of)?;
            let mut appender = Appender::after_head(&self.conn, &self.actor)?;
            work(&mut appender)
        })();
        match outcome {
            Ok((value, true)) => {
                self.conn.execute_batch("RELEASE group_write")?;
                Ok(value)
            }
            Ok((value, false)) => {
                self.conn
                    .execute_batch("ROLLBACK TO group_write; RELEASE group_write")?;
                Ok(value)
            }
            Err(err) => {
                let _ = self
                    .conn
                    .execute_batch("ROLLBACK TO group_write; RELEASE group_write");
                Err(err)
            }
        }
    }

    fn write_unnamed<T>(
        &mut self,
        as_of: NaiveDate,
        work: impl FnOnce(&mut Appender<'_>) -> Result<(T, bool)>,
    ) -> Result<T> {
        if self.in_group {
            return self.write_in_group(as_of, work);
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        crate::trace::phase("write", "write lock");
        clock::check_write_as_of(&tx, as_of)?;
        let mut appender = Appender::after_head(&tx, &self.actor)?;
        crate::trace::phase("write", "chain head");
        let (value, commit) = work(&mut appender)?;
        crate::trace::phase("write", "work");
        if commit {
            tx.commit()?;
        } else {
            tx.rollback()?;
        }
        crate::trace::phase("write", "commit");
        if commit {
            // Copy what this commit added to the WAL into the ledger file
            // now, with the write lock already released (a passive
            // checkpoint blocks nobody): the file alone then holds every
            // entry, and the WAL stays short. Best effort: the commit is
            // durable in the WAL already, and SQLite's checkpoint when the
            // last connection closes copies what this one could not.
            let frames = self
                .conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                    Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
                });
            let phase = match frames {
                Ok((in_wal, copied)) => {
                    format!("checkpoint ({copied} of {in_wal} WAL frames copied)")
                }
                Err(err) => format!("checkpoint (not made: {err})"),
            };
            crate::trace::phase("write", &phase);
        }
        Ok(value)
    }
}

/// SQLite's write-ahead log beside the ledger file at `path`.
pub fn wal_path(path: &Path) -> PathBuf {
    beside(path, "-wal")
}

/// SQLite's shared-memory index of the WAL beside the ledger file at `path`.
pub fn shm_path(path: &Path) -> PathBuf {
    beside(path, "-shm")
}

fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Opens the connection to an existing qledger file without reading its
/// entries (what `verify` needs even when entries were tampered with):
/// the file exists, is SQLite, was made by `qledger init`, has our schema
/// version. Never creates a file.
pub fn open_connection(path: &Path) -> Result<Connection> {
    open_connection_as(path, Access::Write)
}

/// What a command will do with the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// It may append entries (and upgrades an older schema).
    Write,
    /// It only reads (SPEC §5: `report`, `verify`, `digest`, `check`, the
    /// listings …): it must work on a read-only file or read-only media,
    /// and leave no file of its own beside a ledger it cannot write.
    Read,
}

/// Whether this process may write `path` (the real user's permissions).
fn may_write(path: &Path) -> bool {
    rustix::fs::access(path, rustix::fs::Access::WRITE_OK).is_ok()
}

/// Whether a reader must open the ledger immutable: it cannot write the
/// file or its directory, so SQLite could neither lock it nor make its
/// shared-memory file (and any file it made would belong to this reader
/// and stop the owner's next write). The ledger at rest is complete in its
/// one file (writers checkpoint and the last one removes the WAL), so the
/// file alone is the record.
fn read_immutable(path: &Path) -> bool {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    !(may_write(path) && may_write(directory))
}

/// The `file:` URI of `path`, opened immutable and read-only.
fn immutable_uri(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file:");
    for &byte in path.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"/._-~".contains(&byte) {
            uri.push(byte as char);
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri.push_str("?mode=ro&immutable=1");
    uri
}

/// Opens the connection for `access` (see `open_connection`).
pub fn open_connection_as(path: &Path, access: Access) -> Result<Connection> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Err(not_a_ledger(path, "not a regular file")),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(not_a_ledger(path, "no such file"))
        }
        Err(err) => return Err(Error::from(err)),
    }
    let immutable = access == Access::Read && read_immutable(path);
    if immutable && std::fs::metadata(wal_path(path)).is_ok_and(|meta| meta.len() > 0) {
        return Err(Error::Environment(format!(
            "{} cannot be read here: it is not writable by this user and {} holds entries not yet \
             copied into it; ask its owner to run any qledger command (which completes the file), \
             or copy both files",
            path.display(),
            wal_path(path).display()
        )));
    }
    let conn = if immutable {
        Connection::open_with_flags(
            immutable_uri(path),
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
    } else {
        Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
    }
    .map_err(|err| not_a_ledger(path, &err.to_string()))?;
    let version = ledger_schema_version(path, &conn)?;
    if immutable {
        if version < SCHEMA_VERSION {
            return Err(Error::Environment(format!(
                "{} has schema version {version}; this qledger upgrades it in place to version \
                 {SCHEMA_VERSION} the first time it is opened with write access, and it is read-only here",
                path.display()
            )));
        }
        return Ok(conn);
    }
    configure(&conn)?;
    if version < SCHEMA_VERSION {
        upgrade(&conn).map_err(|err| {
            Error::Environment(format!(
                "{} has schema version {version}; this qledger upgrades it in place to version \
                 {SCHEMA_VERSION} (its entries and their chain unchanged) and could not: {err}",
                path.display()
            ))
        })?;
    }
    Ok(conn)
}

/// "PATH is not a qledger ledger (why)": bad input, never created here.
fn not_a_ledger(path: &Path, why: &str) -> Error {
    Error::BadInput(format!(
        "{} is not a qledger ledger ({why}); create one with `qledger init`",
        path.display()
    ))
}

/// The schema version of a file that `qledger init` made and this binary
/// reads; anything else is not a ledger.
fn ledger_schema_version(path: &Path, conn: &Connection) -> Result<i64> {
    let application_id: i64 = conn
        .query_row("PRAGMA application_id", [], |row| row.get(0))
        .map_err(|err| match Error::from(err) {
            Error::BadInput(_) => not_a_ledger(path, "not an SQLite database"),
            other => other,
        })?;
    if application_id != APPLICATION_ID {
        return Err(not_a_ledger(path, "not created by qledger init"));
    }
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if !(1..=SCHEMA_VERSION).contains(&version) {
        return Err(not_a_ledger(
            path,
            &format!("schema version {version}, this qledger reads versions 1 to {SCHEMA_VERSION}"),
        ));
    }
    Ok(version)
}

/// Upgrades a ledger made by an earlier version, in place, in one write
/// transaction, the first time this build opens it (so that needs write
/// access once). Version 2 added `derived_held_units`; version 3 the
/// payment reversal, policy withdrawal and late entry kinds, and let a
/// withdrawn policy version's date be used again; version 4 the licence
/// rules' kinds and token events; version 5 the service's stored answers
/// (`service_response`, not entries). No entry and no hash
/// changes; entry 1 keeps the version the ledger was created with, and
/// `verify` checks the new derived table like every derived one.
fn upgrade(conn: &Connection) -> Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let upgraded = (|| {
        let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        if version == SCHEMA_VERSION {
            return Ok(()); // another process upgraded it meanwhile
        }
        let created = crate::store::schema::upgrade(conn)?;
        if created.iter().any(|table| table == "derived_held_units") {
            let mut insert = conn.prepare(
                "INSERT INTO derived_held_units (chip, planned_date, expires_on, lot_id, held_units) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for ((chip, planned, expires, lot), held_units) in
                crate::rules::facts::held_units_from_entries(conn)?
            {
                insert.execute((chip, planned, expires, lot, held_units))?;
            }
        }
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        Ok::<(), Error>(())
    })();
    match upgraded {
        Ok(()) => conn.execute_batch("COMMIT").map_err(Error::from),
        Err(err) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(err)
        }
    }
}

/// Who acts when nobody says (SPEC §5): `os:` and the login name.
pub fn default_actor() -> String {
    let login = ["USER", "LOGNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".to_string());
    format!("os:{login}")
}

/// The stored hash of entry 1: the ledger's identity (`ledger_id` of a
/// checkpoint). `verify` proves it; this only reads it.
pub fn first_hash(path: &Path) -> Result<Hash> {
    let conn = open_connection_as(path, Access::Read).map_err(|err| err.concerning(path))?;
    let hash: Vec<u8> = conn
        .query_row(
            "SELECT hash FROM ledger_settings WHERE seq = 1",
            [],
            |row| row.get(0),
        )
        .optional()?
        .ok_or_else(|| Error::Integrity("entry 1 (the settings) is missing".to_string()))?;
    hash.as_slice()
        .try_into()
        .map_err(|_| Error::Integrity("entry 1 has a hash that is not 32 bytes".to_string()))
}

/// Reads the settings entry (entry 1).
pub fn read_settings(conn: &Connection) -> Result<Settings> {
    let (kind, markets): (String, String) = conn
        .prepare_cached(
            "SELECT period_kind, restricted_markets FROM ledger_settings ORDER BY seq LIMIT 1",
        )?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?
        .ok_or_else(|| Error::Integrity("its settings entry is missing".to_string()))?;
    Ok(Settings {
        period_kind: PeriodKind::parse(&kind).map_err(Error::Integrity)?,
        restricted_markets: markets.split(',').map(str::to_string).collect(),
    })
}

/// Reads the chain head: the entry with the highest `seq` in any table.
pub fn read_head(conn: &Connection) -> Result<ChainHead> {
    // The highest seq of each table in one row (each `max(seq)` is one seek
    // to the end of a rowid tree), then the hash of the highest. A writer
    // reads the head inside its write lock, in a fresh process: this takes
    // a third of the 0.3 ms that one UNION ALL of `ORDER BY seq DESC LIMIT 1`
    // subqueries took there (most of it preparing and running its sort).
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        let columns: Vec<String> = ALL_KINDS
            .iter()
            .map(|kind| format!("(SELECT max(seq) FROM {})", kind.table))
            .collect();
        format!("SELECT {}", columns.join(", "))
    });
    let last_seqs: Vec<Option<i64>> = conn.prepare_cached(sql)?.query_row([], |row| {
        (0..ALL_KINDS.len()).map(|column| row.get(column)).collect()
    })?;
    let last = ALL_KINDS
        .iter()
        .zip(last_seqs)
        .filter_map(|(kind, seq)| Some((seq?, kind.table)))
        .max_by_key(|(seq, _)| *seq);
    let Some((seq, table)) = last else {
        return Ok(ChainHead::GENESIS);
    };
    let hash: Vec<u8> = conn
        .prepare_cached(&format!("SELECT hash FROM {table} WHERE seq = ?1"))?
        .query_row([seq], |row| row.get(0))?;
    let hash = hash
        .as_slice()
        .try_into()
        .map_err(|_| Error::Integrity(format!("entry {seq} has a hash that is not 32 bytes")))?;
    Ok(ChainHead { entries: seq, hash })
}

/// Appends entries inside a write transaction, extending the chain.
pub struct Appender<'conn> {
    conn: &'conn Connection,
    next_seq: i64,
    previous: Hash,
    first_seq: i64,
    buffer: Vec<u8>,
    actor: String,
    recorded_at: String,
}

impl<'conn> Appender<'conn> {
    /// An appender continuing the chain from the head `conn` sees, for
    /// `actor`, stamped with the real clock (never --as-of or
    /// QLEDGER_TODAY, SPEC §7).
    fn after_head(conn: &'conn Connection, actor: &str) -> Result<Appender<'conn>> {
        let head = read_head(conn)?;
        Ok(Appender {
            conn,
            next_seq: head.entries + 1,
            previous: head.hash,
            first_seq: head.entries + 1,
            buffer: Vec::with_capacity(256),
            actor: actor.to_string(),
            recorded_at: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        })
    }

    /// The transaction's connection, for reads inside the same transaction.
    pub fn conn(&self) -> &'conn Connection {
        self.conn
    }

    /// Seq the next appended entry will get.
    pub fn next_seq(&self) -> i64 {
        self.next_seq
    }

    /// Seq of the first entry appended in this transaction.
    pub fn first_seq(&self) -> i64 {
        self.first_seq
    }

    /// How many entries this transaction appended so far.
    pub fn appended(&self) -> i64 {
        self.next_seq - self.first_seq
    }

    /// The head as it stands inside this transaction.
    pub fn head(&self) -> ChainHead {
        ChainHead {
            entries: self.next_seq - 1,
            hash: self.previous,
        }
    }

    /// Appends one entry of `kind`; `values` follow `kind.columns`. An
    /// entry kind that records its actor gets this write's actor and
    /// wall-clock time too.
    pub fn append(&mut self, kind: &EntryKind, values: &[Value]) -> Result<i64> {
        assert_eq!(
            values.len(),
            kind.columns.len() + kind.added.len(),
            "{} column count",
            kind.table
        );
        let seq = self.next_seq;
        let actor = [
            Value::Text(self.actor.clone()),
            Value::Text(self.recorded_at.clone()),
        ];
        let actor: &[Value] = if kind.records_actor { &actor } else { &[] };
        let all: Vec<&Value> = values.iter().chain(actor).collect();
        let refs: Vec<rusqlite::types::ValueRef<'_>> = all.iter().map(|v| (*v).into()).collect();
        entry::canonical_bytes(&mut self.buffer, seq, kind, &refs);
        let hash = entry::chain_hash(&self.previous, &self.buffer);
        let (columns, trailing) = all.split_at(kind.columns.len());
        let mut names = kind.columns.join(", ");
        names.push_str(", hash");
        for name in kind.trailing() {
            names.push_str(", ");
            names.push_str(name);
        }
        let count = all.len() + 2;
        let placeholders = vec!["?"; count].join(", ");
        let sql = format!(
            "INSERT INTO {} (seq, {names}) VALUES ({placeholders})",
            kind.table
        );
        let mut statement = self.conn.prepare_cached(&sql)?;
        let hash_slice: &[u8] = &hash;
        let mut params: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(count);
        params.push(&seq);
        params.extend(columns.iter().map(|value| *value as &dyn rusqlite::ToSql));
        params.push(&hash_slice);
        params.extend(trailing.iter().map(|value| *value as &dyn rusqlite::ToSql));
        statement.execute(params.as_slice())?;
        self.previous = hash;
        self.next_seq += 1;
        Ok(seq)
    }
}

/// The INSERT for sale entries, columns in `entry::SALE` order.
const SALE_INSERT_SQL: &str = "INSERT INTO sale (seq, record_id, kind, sale_date, chip, market, customer_id, \
     units, unit_price_usd_e4, lot_id, order_ref, reverses, hold_seq, drawn_units, accepted_rules, \
     accepted_reason, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";

impl Appender<'_> {
    /// Inserts encoded sale entries, which must continue the chain exactly
    /// (seq and previous hash as this appender stands). Returns the index
    /// of the first entry whose `record_id` is already recorded, if any;
    /// nothing from that entry on is inserted.
    pub fn insert_sales(
        &mut self,
        batch: &crate::records::sales::SaleBatch,
    ) -> Result<Option<usize>> {
        use crate::records::sales::Field;
        let mut statement = self.conn.prepare_cached(SALE_INSERT_SQL)?;
        // A binding outlives the row it was made for: a column that was
        // NULL in the previous row (most of them, row after row) is not
        // bound again. The first row of a batch binds every column.
        let mut null_bound = [false; 15];
        for (index, slot) in batch.rows.iter().enumerate() {
            assert_eq!(slot.seq, self.next_seq, "sale entries continue the chain");
            statement.raw_bind_parameter(1, slot.seq)?;
            for (column, field) in slot.fields.iter().enumerate() {
                let position = column + 2;
                let was_null =
                    std::mem::replace(&mut null_bound[column], matches!(field, Field::Null));
                match *field {
                    Field::Null if was_null => {}
                    Field::Null => statement.raw_bind_parameter(position, rusqlite::types::Null)?,
                    Field::Int(value) => statement.raw_bind_parameter(position, value)?,
                    Field::Text(start, end) => {
                        statement.raw_bind_parameter(position, batch.text_of(start, end))?
                    }
                }
            }
            statement.raw_bind_parameter(17, &slot.hash[..])?;
            match statement.raw_execute() {
                Ok(_) => {}
                Err(rusqlite::Error::SqliteFailure(failure, _))
                    if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
                {
                    return Ok(Some(index));
                }
                Err(err) => return Err(err.into()),
            }
            self.previous = slot.hash;
            self.next_seq += 1;
        }
        Ok(None)
    }
}
