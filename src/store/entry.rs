//! Entry kinds and their canonical byte encoding (the hash chain's input).
//!
//! Entry `n` is one row, in one of the ledger tables, with `seq = n`. Its
//! canonical bytes are netstrings (`<length>:<bytes>,`) of, in order: the
//! decimal `seq`, the kind (= table name), then every column listed in
//! `EntryKind::columns`, where an INTEGER is written in decimal ASCII, TEXT
//! as its UTF-8 bytes, and NULL as the two bytes `~,` (never a netstring).
//! `hash_n = SHA-256(hash_{n-1} || canonical bytes of entry n)`, `hash_0`
//! = 32 zero bytes. The README repeats this for auditors.

use rusqlite::types::{Value, ValueRef};
use sha2::{Digest, Sha256};

/// One kind of entry: a ledger table and its hashed columns, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryKind {
    /// Table name, also the kind name in the canonical bytes.
    pub table: &'static str,
    /// Columns between `seq` and `hash`, in hashing order.
    pub columns: &'static [&'static str],
    /// Columns added to the kind by a later schema version (after `hash`,
    /// before the actor columns), in hashing order. Entries written before
    /// have them NULL. They are hashed after `columns`, each as the
    /// netstring of its name followed by the netstring of its value, and
    /// only when not NULL: older entries keep their canonical bytes, and the
    /// chain is unchanged.
    pub added: &'static [&'static str],
    /// Whether the entry records who made it and when (`actor`,
    /// `recorded_at`, last; SPEC §7): columns added in schema version 3,
    /// hashed like `added`, after them.
    pub records_actor: bool,
}

impl EntryKind {
    /// The columns after `hash`, in hashing order: `added`, then the actor
    /// columns when the kind records them.
    pub fn trailing(&self) -> impl Iterator<Item = &'static str> {
        let actor: &'static [&'static str] = if self.records_actor {
            &ACTOR_COLUMNS
        } else {
            &[]
        };
        self.added.iter().chain(actor).copied()
    }

    /// How many columns follow `hash`.
    pub fn trailing_count(&self) -> usize {
        self.added.len() + if self.records_actor { 2 } else { 0 }
    }
}

/// The columns of an entry kind that records its actor, in hashing order.
pub const ACTOR_COLUMNS: [&str; 2] = ["actor", "recorded_at"];

/// Entry 1: ledger settings.
pub const LEDGER_SETTINGS: EntryKind = EntryKind {
    table: "ledger_settings",
    columns: &[
        "schema_version",
        "period_kind",
        "restricted_markets",
        "created_on",
    ],
    added: &[],
    records_actor: false,
};
/// A policy version.
pub const POLICY_VERSION: EntryKind = EntryKind {
    table: "policy_version",
    columns: &[
        "chip",
        "effective_from",
        "restricted_allowed",
        "cap_ratio",
        "cap_window",
        "remittance_rate",
        "lab_test_required",
        "customer_approval_required",
        "source",
    ],
    added: &[
        "us_supply_attestation_required",
        "end_use_certificate_required",
    ],
    records_actor: false,
};
/// A customer approval or revocation.
pub const CUSTOMER_EVENT: EntryKind = EntryKind {
    table: "customer_event",
    columns: &[
        "customer_id",
        "name",
        "country",
        "status",
        "effective_date",
        "reference",
    ],
    added: &["kyc_expires_on", "end_use_certificate"],
    records_actor: false,
};
/// A lab result for a lot.
pub const LOT_EVENT: EntryKind = EntryKind {
    table: "lot_event",
    columns: &[
        "lot_id",
        "chip",
        "units",
        "lab",
        "certificate_id",
        "result",
        "effective_date",
    ],
    added: &[],
    records_actor: false,
};
/// A sale or a return.
pub const SALE: EntryKind = EntryKind {
    table: "sale",
    columns: &[
        "record_id",
        "kind",
        "sale_date",
        "chip",
        "market",
        "customer_id",
        "units",
        "unit_price_usd_e4",
        "lot_id",
        "order_ref",
        "reverses",
        "hold_seq",
        "drawn_units",
        "accepted_rules",
        "accepted_reason",
    ],
    added: &[],
    records_actor: false,
};
/// A quota hold.
pub const HOLD: EntryKind = EntryKind {
    table: "hold",
    columns: &[
        "order_ref",
        "chip",
        "market",
        "customer_id",
        "lot_id",
        "units",
        "planned_date",
        "reserved_on",
        "expires_on",
    ],
    added: &[],
    records_actor: true,
};
/// An early end of a hold.
pub const HOLD_RELEASE: EntryKind = EntryKind {
    table: "hold_release",
    columns: &["hold_seq", "order_ref", "released_units", "released_on"],
    added: &[],
    records_actor: true,
};
/// A remittance payment.
pub const REMITTANCE_PAYMENT: EntryKind = EntryKind {
    table: "remittance_payment",
    columns: &[
        "period",
        "amount_usd_e4",
        "paid_on",
        "reference",
        "recorded_on",
    ],
    added: &[],
    records_actor: true,
};
/// A sealed period.
pub const PERIOD_CLOSE: EntryKind = EntryKind {
    table: "period_close",
    columns: &[
        "period",
        "closed_on",
        "figures",
        "head_entries",
        "head_hash",
    ],
    added: &[],
    records_actor: true,
};
/// An import batch.
pub const IMPORT_BATCH: EntryKind = EntryKind {
    table: "import_batch",
    columns: &[
        "file_kind",
        "file_name",
        "file_sha256",
        "row_count",
        "entries_from",
        "entries_to",
        "imported_on",
    ],
    added: &[],
    records_actor: true,
};

/// A reversal of a remittance payment (schema version 3).
pub const PAYMENT_REVERSAL: EntryKind = EntryKind {
    table: "payment_reversal",
    columns: &[
        "payment_seq",
        "period",
        "reference",
        "reason",
        "reversed_on",
    ],
    added: &[],
    records_actor: true,
};
/// A withdrawal of a policy version before it took effect (schema version 3).
pub const POLICY_WITHDRAWAL: EntryKind = EntryKind {
    table: "policy_withdrawal",
    columns: &[
        "version_seq",
        "chip",
        "effective_from",
        "reason",
        "withdrawn_on",
    ],
    added: &[],
    records_actor: true,
};
/// The mark of a late entry: a sale or return dated in a closed period
/// (schema version 3).
pub const LATE_ENTRY: EntryKind = EntryKind {
    table: "late_entry",
    columns: &["sale_seq", "period", "close_seq", "reason"],
    added: &[],
    records_actor: false,
};

/// A US-supply attestation (schema version 4, SPEC §3.10).
pub const SUPPLY_ATTESTATION: EntryKind = EntryKind {
    table: "supply_attestation",
    columns: &[
        "chip",
        "period",
        "us_inventory_units",
        "us_open_orders_units",
        "attested_on",
        "attested_by",
        "reference",
    ],
    added: &[],
    records_actor: false,
};
/// One row of a restricted-party list snapshot (schema version 4, SPEC §3.11).
pub const SCREENING_ENTRY: EntryKind = EntryKind {
    table: "screening_entry",
    columns: &[
        "effective_from",
        "list",
        "entry_id",
        "name",
        "alt_names",
        "country",
    ],
    added: &[],
    records_actor: false,
};
/// A restricted-party list snapshot in force from its date: the
/// `screening_entry` rows of that date, written just before it (schema
/// version 4, SPEC §3.11). An empty snapshot has no rows.
pub const SCREENING_SNAPSHOT: EntryKind = EntryKind {
    table: "screening_snapshot",
    columns: &["effective_from", "row_count"],
    added: &[],
    records_actor: false,
};
/// A compliance officer's false-positive decision on a screening hit
/// (schema version 4, SPEC §3.11).
pub const SCREENING_CLEARANCE: EntryKind = EntryKind {
    table: "screening_clearance",
    columns: &["customer_id", "list", "entry_id", "reason", "cleared_on"],
    added: &[],
    records_actor: true,
};

/// An access token issued or revoked for the service (schema version 4,
/// SPEC §6): the SHA-256 of its secret, never the secret.
pub const TOKEN_EVENT: EntryKind = EntryKind {
    table: "token_event",
    columns: &[
        "event",
        "name",
        "role",
        "expires_on",
        "secret_sha256",
        "event_on",
    ],
    added: &[],
    records_actor: true,
};

/// Every entry kind, in a fixed order.
pub const ALL_KINDS: &[EntryKind] = &[
    LEDGER_SETTINGS,
    POLICY_VERSION,
    CUSTOMER_EVENT,
    LOT_EVENT,
    SALE,
    HOLD,
    HOLD_RELEASE,
    REMITTANCE_PAYMENT,
    PERIOD_CLOSE,
    IMPORT_BATCH,
    PAYMENT_REVERSAL,
    POLICY_WITHDRAWAL,
    LATE_ENTRY,
    SUPPLY_ATTESTATION,
    SCREENING_ENTRY,
    SCREENING_SNAPSHOT,
    SCREENING_CLEARANCE,
    TOKEN_EVENT,
];

/// A chain hash.
pub type Hash = [u8; 32];
/// The hash before the first entry.
pub const GENESIS_HASH: Hash = [0; 32];

/// Appends one netstring-encoded value to `out`.
#[inline]
pub fn encode_value(out: &mut Vec<u8>, value: ValueRef<'_>) {
    match value {
        ValueRef::Null => out.extend_from_slice(b"~,"),
        ValueRef::Integer(number) => {
            let mut buffer = itoa::Buffer::new();
            encode_bytes(out, buffer.format(number).as_bytes());
        }
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => encode_bytes(out, bytes),
        ValueRef::Real(number) => {
            // Never written by qledger (tables are STRICT with no REAL
            // column); encoded distinctly so a forged REAL cannot collide.
            out.extend_from_slice(b"R");
            encode_bytes(out, number.to_string().as_bytes());
        }
    }
}

#[inline]
fn encode_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Most values are shorter than 100 bytes: write their length directly
    // (verify encodes every column of every entry).
    let length = bytes.len();
    out.reserve(length + 8);
    if length < 10 {
        out.push(b'0' + length as u8);
    } else if length < 100 {
        out.extend_from_slice(&[b'0' + (length / 10) as u8, b'0' + (length % 10) as u8]);
    } else {
        out.extend_from_slice(itoa::Buffer::new().format(length).as_bytes());
    }
    out.push(b':');
    out.extend_from_slice(bytes);
    out.push(b',');
}

/// The canonical bytes of entry `seq` of `kind` with `values`: its
/// `columns`, then its `trailing()` columns.
pub fn canonical_bytes(out: &mut Vec<u8>, seq: i64, kind: &EntryKind, values: &[ValueRef<'_>]) {
    debug_assert_eq!(values.len(), kind.columns.len() + kind.trailing_count());
    canonical_start(out, seq, kind);
    let (columns, trailing) = values.split_at(kind.columns.len());
    for value in columns {
        encode_value(out, *value);
    }
    encode_trailing(out, kind, trailing);
}

/// Appends the trailing columns of an entry (see `EntryKind::added` and
/// `records_actor`): each as the netstring of its name and of its value,
/// only when not NULL.
pub fn encode_trailing(out: &mut Vec<u8>, kind: &EntryKind, values: &[ValueRef<'_>]) {
    debug_assert_eq!(values.len(), kind.trailing_count());
    for (name, value) in kind.trailing().zip(values) {
        if *value != ValueRef::Null {
            encode_bytes(out, name.as_bytes());
            encode_value(out, *value);
        }
    }
}

/// Starts the canonical bytes of entry `seq` of `kind` in `out` (seq and
/// kind); the caller then encodes each column with `encode_value`.
pub fn canonical_start(out: &mut Vec<u8>, seq: i64, kind: &EntryKind) {
    out.clear();
    encode_value(out, ValueRef::Integer(seq));
    encode_bytes(out, kind.table.as_bytes());
}

/// `SHA-256(previous || canonical)`.
pub fn chain_hash(previous: &Hash, canonical: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(canonical);
    hasher.finalize().into()
}

/// Borrows owned values as `ValueRef`s.
pub fn value_refs(values: &[Value]) -> Vec<ValueRef<'_>> {
    values.iter().map(ValueRef::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_is_netstrings_with_null_marker() {
        let mut out = Vec::new();
        canonical_bytes(
            &mut out,
            7,
            &HOLD_RELEASE,
            &[
                ValueRef::Integer(3),
                ValueRef::Text(b"PO-1"),
                ValueRef::Integer(-5),
                ValueRef::Null,
                ValueRef::Null,
                ValueRef::Null,
            ],
        );
        assert_eq!(out, b"1:7,12:hold_release,1:3,4:PO-1,2:-5,~,");
    }

    #[test]
    fn genesis_hash_of_known_bytes() {
        // echo -n ... | sha256sum of 32 zero bytes followed by "1:1,"
        let hash = chain_hash(&GENESIS_HASH, b"1:1,");
        let mut expected_input = vec![0u8; 32];
        expected_input.extend_from_slice(b"1:1,");
        let expected: Hash = Sha256::digest(&expected_input).into();
        assert_eq!(hash, expected);
    }

    #[test]
    fn readme_example_encoding() {
        let mut out = Vec::new();
        canonical_bytes(
            &mut out,
            7,
            &HOLD_RELEASE,
            &[
                ValueRef::Integer(3),
                ValueRef::Text(b"PO-1"),
                ValueRef::Integer(5),
                ValueRef::Text(b"2026-02-16"),
                ValueRef::Null,
                ValueRef::Null,
            ],
        );
        assert_eq!(out, b"1:7,12:hold_release,1:3,4:PO-1,1:5,10:2026-02-16,");
    }

    #[test]
    fn readme_example_with_its_actor() {
        let mut out = Vec::new();
        canonical_bytes(
            &mut out,
            7,
            &HOLD_RELEASE,
            &[
                ValueRef::Integer(3),
                ValueRef::Text(b"PO-1"),
                ValueRef::Integer(5),
                ValueRef::Text(b"2026-02-16"),
                ValueRef::Text(b"officer:jane"),
                ValueRef::Text(b"2026-02-16T09:30:00Z"),
            ],
        );
        assert_eq!(
            out,
            b"1:7,12:hold_release,1:3,4:PO-1,1:5,10:2026-02-16,5:actor,12:officer:jane,11:recorded_at,20:2026-02-16T09:30:00Z,"
        );
        // Entries written before schema 3 have neither: their bytes are unchanged.
        let mut old = Vec::new();
        encode_trailing(&mut old, &HOLD_RELEASE, &[ValueRef::Null, ValueRef::Null]);
        assert!(old.is_empty());
    }

    #[test]
    fn added_columns_are_hashed_by_name_only_when_set() {
        let mut out = Vec::new();
        encode_trailing(
            &mut out,
            &CUSTOMER_EVENT,
            &[ValueRef::Null, ValueRef::Text(b"EUC-1")],
        );
        assert_eq!(out, b"19:end_use_certificate,5:EUC-1,");
    }

    #[test]
    fn registry_matches_schema_column_order() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(crate::store::ledger::SCHEMA_SQL)
            .unwrap();
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut registered: Vec<String> = ALL_KINDS.iter().map(|k| k.table.to_string()).collect();
        registered.sort();
        let ledger_tables: Vec<String> = tables
            .into_iter()
            // Derived tables and the service's stored answers are not entries.
            .filter(|t| !t.starts_with("derived_") && t != "service_response")
            .collect();
        assert_eq!(
            ledger_tables, registered,
            "every ledger table is a registered kind"
        );
        for kind in ALL_KINDS {
            let columns: Vec<String> = conn
                .prepare(&format!(
                    "SELECT name FROM pragma_table_info('{}') ORDER BY cid",
                    kind.table
                ))
                .unwrap()
                .query_map([], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let mut expected = vec!["seq".to_string()];
            expected.extend(kind.columns.iter().map(|c| c.to_string()));
            expected.push("hash".to_string());
            expected.extend(kind.trailing().map(|c| c.to_string()));
            assert_eq!(columns, expected, "{}", kind.table);
        }
    }
}
