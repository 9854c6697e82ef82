-- qledger schema, version 4. The whole data model.
--
-- Every table below except those named derived_* is a LEDGER TABLE: one row
-- per appended entry. All ledger tables share ONE global, gap-free sequence
-- (`seq`, the rowid): entry n lives in exactly one of them. Each row carries
-- `hash` = SHA-256(hash of entry n-1 || canonical bytes of entry n), with the
-- canonical bytes built from the row's own columns (see README, "Canonical
-- encoding"). Triggers refuse UPDATE and DELETE on every ledger table,
-- whatever client opens the file.
--
-- Types: tables are STRICT. Money is INTEGER in ten-thousandths of a dollar
-- (column names end in _usd_e4), ratios are exact decimal TEXT ('0.5'),
-- dates are TEXT 'YYYY-MM-DD', booleans INTEGER 0/1. Nothing is REAL.

PRAGMA application_id = 1363953490; -- 0x514C4752, 'QLGR'
PRAGMA user_version = 4;

-- Entry 1: the ledger's settings, fixed at init.
CREATE TABLE ledger_settings (
    seq                 INTEGER PRIMARY KEY,
    schema_version      INTEGER NOT NULL,
    period_kind         TEXT    NOT NULL CHECK (period_kind IN ('month', 'quarter')),
    restricted_markets  TEXT    NOT NULL,          -- comma-separated, e.g. 'CN,HK,MO'
    created_on          TEXT    NOT NULL,          -- the as-of date of init
    hash                BLOB    NOT NULL
) STRICT;

-- Effective-dated policy versions, one chip each (SPEC 3.1).
CREATE TABLE policy_version (
    seq                         INTEGER PRIMARY KEY,
    chip                        TEXT    NOT NULL,
    effective_from              TEXT    NOT NULL,
    restricted_allowed          INTEGER NOT NULL CHECK (restricted_allowed IN (0, 1)),
    cap_ratio                   TEXT,              -- NULL: no cap
    cap_window                  TEXT    CHECK (cap_window IN ('period', 'cumulative')),
    remittance_rate             TEXT    NOT NULL,
    lab_test_required           INTEGER NOT NULL CHECK (lab_test_required IN (0, 1)),
    customer_approval_required  INTEGER NOT NULL CHECK (customer_approval_required IN (0, 1)),
    source                      TEXT    NOT NULL,
    hash                        BLOB    NOT NULL,
    us_supply_attestation_required INTEGER CHECK (us_supply_attestation_required IN (0, 1)), -- NULL before schema 4: false
    end_use_certificate_required   INTEGER CHECK (end_use_certificate_required IN (0, 1)),   -- NULL before schema 4: false
    -- Not UNIQUE (chip, effective_from): a withdrawn version may be
    -- recorded again for its date (SPEC 3.1); the import checks the rest.
    CHECK ((cap_ratio IS NULL) = (cap_window IS NULL))
) STRICT;

-- Customer approvals and revocations (SPEC 3.2).
CREATE TABLE customer_event (
    seq             INTEGER PRIMARY KEY,
    customer_id     TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    country         TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('approved', 'revoked')),
    effective_date  TEXT    NOT NULL,
    reference       TEXT    NOT NULL,              -- may be ''
    hash            BLOB    NOT NULL,
    kyc_expires_on  TEXT,                          -- approval lapses on this date (schema 4); NULL: none
    end_use_certificate TEXT,                      -- no-military-end-use certificate (schema 4); NULL: none
    UNIQUE (customer_id, effective_date)
) STRICT;

-- Third-party lab results per lot (SPEC 3.3).
CREATE TABLE lot_event (
    seq             INTEGER PRIMARY KEY,
    lot_id          TEXT    NOT NULL,
    chip            TEXT    NOT NULL,
    units           INTEGER NOT NULL CHECK (units BETWEEN 1 AND 1000000000),
    lab             TEXT    NOT NULL,
    certificate_id  TEXT    NOT NULL,
    result          TEXT    NOT NULL CHECK (result IN ('pass', 'fail', 'revoked')),
    effective_date  TEXT    NOT NULL,
    hash            BLOB    NOT NULL,
    UNIQUE (lot_id, effective_date)
) STRICT;

-- Sales and returns (SPEC 3.4, 3.5, 4). A return stores its sale's price
-- and lot, so every figure can be computed from this row alone.
CREATE TABLE sale (
    seq                 INTEGER PRIMARY KEY,
    record_id           TEXT    NOT NULL UNIQUE,
    kind                TEXT    NOT NULL CHECK (kind IN ('sale', 'return')),
    sale_date           TEXT    NOT NULL,
    chip                TEXT    NOT NULL,
    market              TEXT    NOT NULL,
    customer_id         TEXT,
    units               INTEGER NOT NULL CHECK (units BETWEEN 1 AND 1000000000),
    unit_price_usd_e4   INTEGER NOT NULL CHECK (unit_price_usd_e4 BETWEEN 0 AND 10000000000000),
    lot_id              TEXT,
    order_ref           TEXT,
    reverses            TEXT,                      -- record_id of the sale a return reverses
    hold_seq            INTEGER,                   -- the hold this sale drew units from
    drawn_units         INTEGER,                   -- how many of its units came from that hold
    accepted_rules      TEXT,                      -- e.g. 'cap,lot' for --accept-violations
    accepted_reason     TEXT,
    hash                BLOB    NOT NULL,
    CHECK ((kind = 'return') = (reverses IS NOT NULL)),
    CHECK ((hold_seq IS NULL) = (drawn_units IS NULL)),
    CHECK (drawn_units IS NULL OR drawn_units BETWEEN 1 AND units),
    CHECK ((accepted_rules IS NULL) = (accepted_reason IS NULL))
) STRICT;

-- Quota holds made by `reserve` (SPEC 3.6).
CREATE TABLE hold (
    seq             INTEGER PRIMARY KEY,
    order_ref       TEXT    NOT NULL,
    chip            TEXT    NOT NULL,
    market          TEXT    NOT NULL,
    customer_id     TEXT,
    lot_id          TEXT,
    units           INTEGER NOT NULL CHECK (units BETWEEN 1 AND 1000000000),
    planned_date    TEXT    NOT NULL,
    reserved_on     TEXT    NOT NULL,              -- the as-of date of reserve
    expires_on      TEXT    NOT NULL,
    hash            BLOB    NOT NULL,
    actor           TEXT,                          -- who (SPEC 7); NULL before schema 3
    recorded_at     TEXT                           -- when, UTC wall clock; NULL before schema 3
) STRICT;

-- Early ends of holds made by `release`.
CREATE TABLE hold_release (
    seq             INTEGER PRIMARY KEY,
    hold_seq        INTEGER NOT NULL,
    order_ref       TEXT    NOT NULL,
    released_units  INTEGER NOT NULL,
    released_on     TEXT    NOT NULL,
    hash            BLOB    NOT NULL,
    actor           TEXT,                          -- who (SPEC 7); NULL before schema 3
    recorded_at     TEXT                           -- when, UTC wall clock; NULL before schema 3
) STRICT;

-- Remittance payments recorded with `remit` (SPEC 3.7).
CREATE TABLE remittance_payment (
    seq             INTEGER PRIMARY KEY,
    period          TEXT    NOT NULL,
    amount_usd_e4   INTEGER NOT NULL CHECK (amount_usd_e4 > 0),
    paid_on         TEXT    NOT NULL,
    reference       TEXT    NOT NULL,
    recorded_on     TEXT    NOT NULL,
    hash            BLOB    NOT NULL,
    actor           TEXT,                          -- who (SPEC 7); NULL before schema 3
    recorded_at     TEXT                           -- when, UTC wall clock; NULL before schema 3
) STRICT;

-- Sealed periods (SPEC 3.8): the figures as the report showed them, and
-- the chain head (entries and hash) they were computed at.
CREATE TABLE period_close (
    seq             INTEGER PRIMARY KEY,
    period          TEXT    NOT NULL UNIQUE,
    closed_on       TEXT    NOT NULL,
    figures         TEXT    NOT NULL,              -- canonical JSON
    head_entries    INTEGER NOT NULL,
    head_hash       TEXT    NOT NULL,              -- lower-case hex
    hash            BLOB    NOT NULL,
    actor           TEXT,                          -- who (SPEC 7); NULL before schema 3
    recorded_at     TEXT                           -- when, UTC wall clock; NULL before schema 3
) STRICT;

-- One per import that inserted at least one entry: which file, exactly
-- which bytes, and which entries it produced.
CREATE TABLE import_batch (
    seq             INTEGER PRIMARY KEY,
    file_kind       TEXT    NOT NULL CHECK (file_kind IN ('sales', 'policy', 'customers', 'lots', 'supply', 'screening')),
    file_name       TEXT    NOT NULL,
    file_sha256     TEXT    NOT NULL,
    row_count       INTEGER NOT NULL,
    entries_from    INTEGER NOT NULL,
    entries_to      INTEGER NOT NULL,
    imported_on     TEXT    NOT NULL,
    hash            BLOB    NOT NULL,
    actor           TEXT,                          -- who (SPEC 7); NULL before schema 3
    recorded_at     TEXT                           -- when, UTC wall clock; NULL before schema 3
) STRICT;

-- A payment reversed by `remit --reverse` (SPEC 3.13): it no longer counts.
CREATE TABLE payment_reversal (
    seq             INTEGER PRIMARY KEY,
    payment_seq     INTEGER NOT NULL UNIQUE,       -- the remittance_payment entry
    period          TEXT    NOT NULL,
    reference       TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    reversed_on     TEXT    NOT NULL,              -- the as-of date of the reversal
    hash            BLOB    NOT NULL,
    actor           TEXT,                          -- who (SPEC 7); NULL before schema 3
    recorded_at     TEXT                           -- when, UTC wall clock; NULL before schema 3
) STRICT;

-- A policy version withdrawn before it took effect (SPEC 3.1): every rule
-- and report ignores it from then on.
CREATE TABLE policy_withdrawal (
    seq             INTEGER PRIMARY KEY,
    version_seq     INTEGER NOT NULL UNIQUE,       -- the policy_version entry
    chip            TEXT    NOT NULL,
    effective_from  TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    withdrawn_on    TEXT    NOT NULL,              -- the as-of date of the withdrawal
    hash            BLOB    NOT NULL,
    actor           TEXT,                          -- who (SPEC 7); NULL before schema 3
    recorded_at     TEXT                           -- when, UTC wall clock; NULL before schema 3
) STRICT;

-- A sale or return recorded with `import --late` in a period already
-- closed (SPEC 3.12): which entry, the close it came after, and why.
CREATE TABLE late_entry (
    seq             INTEGER PRIMARY KEY,
    sale_seq        INTEGER NOT NULL UNIQUE,       -- the sale entry
    period          TEXT    NOT NULL,
    close_seq       INTEGER NOT NULL,              -- the period_close entry
    reason          TEXT    NOT NULL,
    hash            BLOB    NOT NULL
) STRICT;

-- US-supply attestations (SPEC 3.10): US inventory and open US orders of
-- one chip for one period, attested on a date by a named officer.
CREATE TABLE supply_attestation (
    seq                   INTEGER PRIMARY KEY,
    chip                  TEXT    NOT NULL,
    period                TEXT    NOT NULL,
    us_inventory_units    INTEGER NOT NULL CHECK (us_inventory_units BETWEEN 0 AND 1000000000),
    us_open_orders_units  INTEGER NOT NULL CHECK (us_open_orders_units BETWEEN 0 AND 1000000000),
    attested_on           TEXT    NOT NULL,
    attested_by           TEXT    NOT NULL,
    reference             TEXT    NOT NULL,        -- may be ''
    hash                  BLOB    NOT NULL,
    UNIQUE (chip, period, attested_on)
) STRICT;

-- Restricted-party list snapshots (SPEC 3.11): the rows of each snapshot,
-- as written, then one screening_snapshot entry that puts the snapshot in
-- force from its date until the next one.
CREATE TABLE screening_entry (
    seq             INTEGER PRIMARY KEY,
    effective_from  TEXT    NOT NULL,              -- the snapshot it belongs to
    list            TEXT    NOT NULL,
    entry_id        TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    alt_names       TEXT    NOT NULL,              -- ';'-separated, may be ''
    country         TEXT    NOT NULL,              -- two letters or ''
    hash            BLOB    NOT NULL,
    UNIQUE (effective_from, list, entry_id)
) STRICT;
CREATE TABLE screening_snapshot (
    seq             INTEGER PRIMARY KEY,
    effective_from  TEXT    NOT NULL UNIQUE,
    row_count       INTEGER NOT NULL CHECK (row_count >= 0),
    hash            BLOB    NOT NULL
) STRICT;

-- A compliance officer's documented false-positive decision: this
-- customer is not this list entry (SPEC 3.11).
CREATE TABLE screening_clearance (
    seq             INTEGER PRIMARY KEY,
    customer_id     TEXT    NOT NULL,
    list            TEXT    NOT NULL,
    entry_id        TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    cleared_on      TEXT    NOT NULL,              -- the as-of date of the clearance
    hash            BLOB    NOT NULL,
    actor           TEXT,
    recorded_at     TEXT,
    UNIQUE (customer_id, list, entry_id)
) STRICT;

-- Access tokens of the service (SPEC 6): issued with a role and an
-- optional expiry, or revoked. Only the SHA-256 of a secret is stored.
CREATE TABLE token_event (
    seq             INTEGER PRIMARY KEY,
    event           TEXT    NOT NULL CHECK (event IN ('issued', 'revoked')),
    name            TEXT    NOT NULL,
    role            TEXT    CHECK (role IN ('desk', 'importer', 'officer', 'auditor')),
    expires_on      TEXT,                          -- NULL: no expiry
    secret_sha256   TEXT,                          -- lower-case hex; NULL on a revocation
    event_on        TEXT    NOT NULL,              -- the as-of date of the command
    hash            BLOB    NOT NULL,
    actor           TEXT,
    recorded_at     TEXT,
    CHECK ((event = 'issued') = (role IS NOT NULL AND secret_sha256 IS NOT NULL))
) STRICT;
CREATE INDEX token_event_by_name ON token_event (name);
CREATE INDEX token_event_by_secret ON token_event (secret_sha256) WHERE secret_sha256 IS NOT NULL;

-- Answers `qledger serve` gave to POSTs carrying an Idempotency-Key (SPEC 6),
-- so that a retry gets the same answer and appends nothing. Not entries:
-- outside the chain, read by no rule or report; each row is written in the
-- same transaction as the write it answers. Append-only.
CREATE TABLE service_response (
    token_name      TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    request_sha256  TEXT    NOT NULL,              -- lower-case hex of method, path, query and body
    status          INTEGER NOT NULL,
    content_type    TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    answered_at     TEXT    NOT NULL,              -- wall-clock UTC, YYYY-MM-DDTHH:MM:SSZ
    PRIMARY KEY (token_name, idempotency_key)
) STRICT;

-- Lookup indexes for the rules. Sales carry only the UNIQUE(record_id)
-- index; per-day figures come from the derived tables below, so the nightly
-- import does not maintain a (chip, market, date) index per row.
CREATE INDEX policy_version_by_chip ON policy_version (chip, effective_from);
CREATE INDEX customer_event_by_id ON customer_event (customer_id, effective_date);
CREATE INDEX lot_event_by_id ON lot_event (lot_id, effective_date);
CREATE INDEX hold_by_order ON hold (order_ref);
CREATE INDEX hold_by_chip ON hold (chip, planned_date);
CREATE INDEX hold_by_lot ON hold (lot_id) WHERE lot_id IS NOT NULL;
CREATE INDEX hold_release_by_hold ON hold_release (hold_seq);
CREATE INDEX sale_returns ON sale (reverses) WHERE reverses IS NOT NULL;
CREATE INDEX sale_draws ON sale (hold_seq) WHERE hold_seq IS NOT NULL;
CREATE INDEX sale_violations ON sale (sale_date) WHERE accepted_rules IS NOT NULL;
CREATE INDEX remittance_by_period ON remittance_payment (period, reference);
CREATE INDEX late_entry_by_period ON late_entry (period);

-- DERIVED TABLES: running totals, rebuildable from the entries at any time
-- and recomputed and compared by `qledger verify`. Not part of the chain;
-- updated (never by hand) in the same transaction as the entries they sum.

-- Net units per chip and day (sales minus returns dated that day), by group.
CREATE TABLE derived_daily_units (
    chip                  TEXT    NOT NULL,
    day                   TEXT    NOT NULL,
    us_net_units          INTEGER NOT NULL,
    restricted_net_units  INTEGER NOT NULL,
    other_net_units       INTEGER NOT NULL,
    PRIMARY KEY (chip, day)
) STRICT, WITHOUT ROWID;

-- Net restricted units shipped per lot and period (restricted sales naming
-- it, net of returns, by the period of their own date).
CREATE TABLE derived_lot_units (
    lot_id                TEXT    NOT NULL,
    period                TEXT    NOT NULL,
    shipped_net_units     INTEGER NOT NULL,
    PRIMARY KEY (lot_id, period)
) STRICT, WITHOUT ROWID;
CREATE INDEX derived_lot_units_by_period ON derived_lot_units (period);

-- Restricted revenue per chip, period (of the row's own date) and the
-- remittance rate in force on the original sale's date ('0' with no policy
-- version). Amounts are exact integers of ten-thousandths of a dollar,
-- written as decimal TEXT because they can exceed 64 bits; they are summed
-- in Rust, never in SQL.
CREATE TABLE derived_period_revenue (
    chip                  TEXT    NOT NULL,
    period                TEXT    NOT NULL,
    remittance_rate       TEXT    NOT NULL,
    sales_usd_e4          TEXT    NOT NULL,
    returns_usd_e4        TEXT    NOT NULL,
    PRIMARY KEY (chip, period, remittance_rate)
) STRICT, WITHOUT ROWID;

-- Units still held, per chip, planned date, expiry and lot ('' for holds
-- naming no lot): what `reserve` held, less what sales drew and what
-- `release` freed. A cap or lot check sums a few of these rows instead of
-- visiting every hold. Expiry (on the as-of clock) and closed periods are
-- applied when reading; a row is deleted when it reaches 0.
CREATE TABLE derived_held_units (
    chip                  TEXT    NOT NULL,
    planned_date          TEXT    NOT NULL,
    expires_on            TEXT    NOT NULL,
    lot_id                TEXT    NOT NULL,
    held_units            INTEGER NOT NULL CHECK (held_units >= 0),
    PRIMARY KEY (chip, planned_date, expires_on, lot_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX derived_held_units_by_lot ON derived_held_units (lot_id, expires_on) WHERE lot_id <> '';

-- Screening names: every name and alt name of every snapshot row,
-- normalised as SPEC 3.11 says (N(s)), so a hit is one indexed lookup.
CREATE TABLE derived_screening_names (
    effective_from        TEXT    NOT NULL,
    name_key              TEXT    NOT NULL,        -- N(name), never ''
    entry_seq             INTEGER NOT NULL,        -- the screening_entry
    listed_name           TEXT    NOT NULL,        -- the name or alt name as written
    PRIMARY KEY (effective_from, name_key, entry_seq, listed_name)
) STRICT, WITHOUT ROWID;

-- Which periods each sales import batch inserted entries dated in.
CREATE TABLE derived_batch_periods (
    batch_seq             INTEGER NOT NULL,
    period                TEXT    NOT NULL,
    PRIMARY KEY (period, batch_seq)
) STRICT, WITHOUT ROWID;

-- Append-only: no UPDATE or DELETE on any ledger table.
CREATE TRIGGER ledger_settings_no_update BEFORE UPDATE ON ledger_settings BEGIN SELECT RAISE(ABORT, 'ledger_settings is append-only: corrections are new entries'); END;
CREATE TRIGGER ledger_settings_no_delete BEFORE DELETE ON ledger_settings BEGIN SELECT RAISE(ABORT, 'ledger_settings is append-only: corrections are new entries'); END;
CREATE TRIGGER policy_version_no_update BEFORE UPDATE ON policy_version BEGIN SELECT RAISE(ABORT, 'policy_version is append-only: corrections are new entries'); END;
CREATE TRIGGER policy_version_no_delete BEFORE DELETE ON policy_version BEGIN SELECT RAISE(ABORT, 'policy_version is append-only: corrections are new entries'); END;
CREATE TRIGGER customer_event_no_update BEFORE UPDATE ON customer_event BEGIN SELECT RAISE(ABORT, 'customer_event is append-only: corrections are new entries'); END;
CREATE TRIGGER customer_event_no_delete BEFORE DELETE ON customer_event BEGIN SELECT RAISE(ABORT, 'customer_event is append-only: corrections are new entries'); END;
CREATE TRIGGER lot_event_no_update BEFORE UPDATE ON lot_event BEGIN SELECT RAISE(ABORT, 'lot_event is append-only: corrections are new entries'); END;
CREATE TRIGGER lot_event_no_delete BEFORE DELETE ON lot_event BEGIN SELECT RAISE(ABORT, 'lot_event is append-only: corrections are new entries'); END;
CREATE TRIGGER sale_no_update BEFORE UPDATE ON sale BEGIN SELECT RAISE(ABORT, 'sale is append-only: corrections are new entries'); END;
CREATE TRIGGER sale_no_delete BEFORE DELETE ON sale BEGIN SELECT RAISE(ABORT, 'sale is append-only: corrections are new entries'); END;
CREATE TRIGGER hold_no_update BEFORE UPDATE ON hold BEGIN SELECT RAISE(ABORT, 'hold is append-only: corrections are new entries'); END;
CREATE TRIGGER hold_no_delete BEFORE DELETE ON hold BEGIN SELECT RAISE(ABORT, 'hold is append-only: corrections are new entries'); END;
CREATE TRIGGER hold_release_no_update BEFORE UPDATE ON hold_release BEGIN SELECT RAISE(ABORT, 'hold_release is append-only: corrections are new entries'); END;
CREATE TRIGGER hold_release_no_delete BEFORE DELETE ON hold_release BEGIN SELECT RAISE(ABORT, 'hold_release is append-only: corrections are new entries'); END;
CREATE TRIGGER remittance_payment_no_update BEFORE UPDATE ON remittance_payment BEGIN SELECT RAISE(ABORT, 'remittance_payment is append-only: corrections are new entries'); END;
CREATE TRIGGER remittance_payment_no_delete BEFORE DELETE ON remittance_payment BEGIN SELECT RAISE(ABORT, 'remittance_payment is append-only: corrections are new entries'); END;
CREATE TRIGGER period_close_no_update BEFORE UPDATE ON period_close BEGIN SELECT RAISE(ABORT, 'period_close is append-only: corrections are new entries'); END;
CREATE TRIGGER period_close_no_delete BEFORE DELETE ON period_close BEGIN SELECT RAISE(ABORT, 'period_close is append-only: corrections are new entries'); END;
CREATE TRIGGER import_batch_no_update BEFORE UPDATE ON import_batch BEGIN SELECT RAISE(ABORT, 'import_batch is append-only: corrections are new entries'); END;
CREATE TRIGGER import_batch_no_delete BEFORE DELETE ON import_batch BEGIN SELECT RAISE(ABORT, 'import_batch is append-only: corrections are new entries'); END;
CREATE TRIGGER payment_reversal_no_update BEFORE UPDATE ON payment_reversal BEGIN SELECT RAISE(ABORT, 'payment_reversal is append-only: corrections are new entries'); END;
CREATE TRIGGER payment_reversal_no_delete BEFORE DELETE ON payment_reversal BEGIN SELECT RAISE(ABORT, 'payment_reversal is append-only: corrections are new entries'); END;
CREATE TRIGGER policy_withdrawal_no_update BEFORE UPDATE ON policy_withdrawal BEGIN SELECT RAISE(ABORT, 'policy_withdrawal is append-only: corrections are new entries'); END;
CREATE TRIGGER policy_withdrawal_no_delete BEFORE DELETE ON policy_withdrawal BEGIN SELECT RAISE(ABORT, 'policy_withdrawal is append-only: corrections are new entries'); END;
CREATE TRIGGER late_entry_no_update BEFORE UPDATE ON late_entry BEGIN SELECT RAISE(ABORT, 'late_entry is append-only: corrections are new entries'); END;
CREATE TRIGGER late_entry_no_delete BEFORE DELETE ON late_entry BEGIN SELECT RAISE(ABORT, 'late_entry is append-only: corrections are new entries'); END;
CREATE TRIGGER supply_attestation_no_update BEFORE UPDATE ON supply_attestation BEGIN SELECT RAISE(ABORT, 'supply_attestation is append-only: corrections are new entries'); END;
CREATE TRIGGER supply_attestation_no_delete BEFORE DELETE ON supply_attestation BEGIN SELECT RAISE(ABORT, 'supply_attestation is append-only: corrections are new entries'); END;
CREATE TRIGGER screening_entry_no_update BEFORE UPDATE ON screening_entry BEGIN SELECT RAISE(ABORT, 'screening_entry is append-only: corrections are new entries'); END;
CREATE TRIGGER screening_entry_no_delete BEFORE DELETE ON screening_entry BEGIN SELECT RAISE(ABORT, 'screening_entry is append-only: corrections are new entries'); END;
CREATE TRIGGER screening_snapshot_no_update BEFORE UPDATE ON screening_snapshot BEGIN SELECT RAISE(ABORT, 'screening_snapshot is append-only: corrections are new entries'); END;
CREATE TRIGGER screening_snapshot_no_delete BEFORE DELETE ON screening_snapshot BEGIN SELECT RAISE(ABORT, 'screening_snapshot is append-only: corrections are new entries'); END;
CREATE TRIGGER screening_clearance_no_update BEFORE UPDATE ON screening_clearance BEGIN SELECT RAISE(ABORT, 'screening_clearance is append-only: corrections are new entries'); END;
CREATE TRIGGER screening_clearance_no_delete BEFORE DELETE ON screening_clearance BEGIN SELECT RAISE(ABORT, 'screening_clearance is append-only: corrections are new entries'); END;

CREATE TRIGGER token_event_no_update BEFORE UPDATE ON token_event BEGIN SELECT RAISE(ABORT, 'token_event is append-only: corrections are new entries'); END;
CREATE TRIGGER token_event_no_delete BEFORE DELETE ON token_event BEGIN SELECT RAISE(ABORT, 'token_event is append-only: corrections are new entries'); END;
CREATE TRIGGER service_response_no_update BEFORE UPDATE ON service_response BEGIN SELECT RAISE(ABORT, 'service_response is append-only'); END;
CREATE TRIGGER service_response_no_delete BEFORE DELETE ON service_response BEGIN SELECT RAISE(ABORT, 'service_response is append-only'); END;
-- Views for auditors (open the file in any SQLite client).

-- Every entry of the chain, in order: which table holds it and its hash
-- (lower-case hex, as `qledger digest` prints it).
CREATE VIEW ledger_entries AS
          SELECT seq, 'ledger_settings'    AS kind, lower(hex(hash)) AS hash FROM ledger_settings
UNION ALL SELECT seq, 'policy_version'     AS kind, lower(hex(hash)) AS hash FROM policy_version
UNION ALL SELECT seq, 'customer_event'     AS kind, lower(hex(hash)) AS hash FROM customer_event
UNION ALL SELECT seq, 'lot_event'          AS kind, lower(hex(hash)) AS hash FROM lot_event
UNION ALL SELECT seq, 'sale'               AS kind, lower(hex(hash)) AS hash FROM sale
UNION ALL SELECT seq, 'hold'               AS kind, lower(hex(hash)) AS hash FROM hold
UNION ALL SELECT seq, 'hold_release'       AS kind, lower(hex(hash)) AS hash FROM hold_release
UNION ALL SELECT seq, 'remittance_payment' AS kind, lower(hex(hash)) AS hash FROM remittance_payment
UNION ALL SELECT seq, 'period_close'       AS kind, lower(hex(hash)) AS hash FROM period_close
UNION ALL SELECT seq, 'import_batch'       AS kind, lower(hex(hash)) AS hash FROM import_batch
UNION ALL SELECT seq, 'payment_reversal'   AS kind, lower(hex(hash)) AS hash FROM payment_reversal
UNION ALL SELECT seq, 'policy_withdrawal'  AS kind, lower(hex(hash)) AS hash FROM policy_withdrawal
UNION ALL SELECT seq, 'late_entry'         AS kind, lower(hex(hash)) AS hash FROM late_entry
UNION ALL SELECT seq, 'supply_attestation' AS kind, lower(hex(hash)) AS hash FROM supply_attestation
UNION ALL SELECT seq, 'screening_entry'    AS kind, lower(hex(hash)) AS hash FROM screening_entry
UNION ALL SELECT seq, 'screening_snapshot' AS kind, lower(hex(hash)) AS hash FROM screening_snapshot
UNION ALL SELECT seq, 'screening_clearance' AS kind, lower(hex(hash)) AS hash FROM screening_clearance
UNION ALL SELECT seq, 'token_event'        AS kind, lower(hex(hash)) AS hash FROM token_event
ORDER BY seq;

-- The ledger's clock (SPEC 3.14): the as-of date of its latest write. No
-- view reads the wall clock; the states below are on this date.
CREATE VIEW ledger_clock AS
SELECT max(d) AS as_of FROM (
          SELECT (SELECT created_on   FROM ledger_settings    ORDER BY seq DESC LIMIT 1) AS d
UNION ALL SELECT (SELECT imported_on  FROM import_batch       ORDER BY seq DESC LIMIT 1)
UNION ALL SELECT (SELECT reserved_on  FROM hold               ORDER BY seq DESC LIMIT 1)
UNION ALL SELECT (SELECT released_on  FROM hold_release       ORDER BY seq DESC LIMIT 1)
UNION ALL SELECT (SELECT recorded_on  FROM remittance_payment ORDER BY seq DESC LIMIT 1)
UNION ALL SELECT (SELECT closed_on    FROM period_close       ORDER BY seq DESC LIMIT 1)
UNION ALL SELECT (SELECT reversed_on  FROM payment_reversal   ORDER BY seq DESC LIMIT 1)
UNION ALL SELECT (SELECT withdrawn_on FROM policy_withdrawal  ORDER BY seq DESC LIMIT 1)
UNION ALL SELECT (SELECT cleared_on   FROM screening_clearance ORDER BY seq DESC LIMIT 1)
UNION ALL SELECT (SELECT event_on     FROM token_event        ORDER BY seq DESC LIMIT 1));

-- Sales and returns with money as exact decimal dollars (4 decimals) and
-- whether each was recorded late, after its period's close.
CREATE VIEW sales AS
SELECT s.seq, s.record_id, s.kind, s.sale_date, s.chip, s.market, s.customer_id, s.lot_id,
       s.units, (s.unit_price_usd_e4 / 10000) || '.' || substr('0000' || (s.unit_price_usd_e4 % 10000), -4) AS unit_price_usd,
       s.order_ref, s.reverses, s.hold_seq, s.drawn_units, s.accepted_rules, s.accepted_reason,
       EXISTS (SELECT 1 FROM late_entry AS l WHERE l.sale_seq = s.seq) AS late
FROM sale AS s;

-- Holds in their state on the ledger's clock: units drawn, released and
-- still held, and whether active (not released, not fully drawn, not
-- expired, its period not closed).
CREATE VIEW holds AS
SELECT h.seq, h.order_ref, h.chip, h.market, h.customer_id, h.lot_id, h.units, h.planned_date,
       h.reserved_on, h.expires_on, x.drawn_units,
       coalesce(r.released_units, 0) AS released_units,
       CASE WHEN r.seq IS NULL AND x.drawn_units < h.units AND (SELECT as_of FROM ledger_clock) < h.expires_on
                 AND NOT EXISTS (SELECT 1 FROM period_close AS c
                                 WHERE c.period = CASE WHEN (SELECT period_kind FROM ledger_settings) = 'month'
                                                       THEN substr(h.planned_date, 1, 7)
                                                       ELSE substr(h.planned_date, 1, 4) || '-Q' || ((CAST(substr(h.planned_date, 6, 2) AS INTEGER) + 2) / 3) END)
            THEN h.units - x.drawn_units ELSE 0 END AS held_units
FROM hold AS h
JOIN (SELECT h2.seq, (SELECT coalesce(sum(s.drawn_units), 0) FROM sale AS s WHERE s.hold_seq = h2.seq) AS drawn_units
      FROM hold AS h2) AS x ON x.seq = h.seq
LEFT JOIN hold_release AS r ON r.hold_seq = h.seq;

-- Remittance payments with money as exact decimal dollars, and whether
-- (and why) each was reversed.
CREATE VIEW payments AS
SELECT p.seq, p.period, p.reference,
       (p.amount_usd_e4 / 10000) || '.' || substr('0000' || (p.amount_usd_e4 % 10000), -4) AS amount_usd,
       p.paid_on, p.recorded_on, r.seq IS NOT NULL AS reversed, r.reason AS reversal_reason
FROM remittance_payment AS p LEFT JOIN payment_reversal AS r ON r.payment_seq = p.seq;

-- Period closes: the sealed figures (canonical JSON) and the head they name.
CREATE VIEW period_closes AS
SELECT seq, period, closed_on, head_entries, head_hash, figures FROM period_close;

-- Every policy version, withdrawn ones marked with the withdrawal's reason.
CREATE VIEW policy_history AS
SELECT v.seq, v.chip, v.effective_from, v.restricted_allowed, v.cap_ratio, v.cap_window,
       v.remittance_rate, v.lab_test_required, v.customer_approval_required, v.source,
       coalesce(v.us_supply_attestation_required, 0) AS us_supply_attestation_required,
       coalesce(v.end_use_certificate_required, 0) AS end_use_certificate_required,
       w.seq IS NOT NULL AS withdrawn, w.reason AS withdrawal_reason
FROM policy_version AS v LEFT JOIN policy_withdrawal AS w ON w.version_seq = v.seq;

-- Each customer's state on the ledger's clock: its latest event dated on
-- or before it.
CREATE VIEW customer_state AS
SELECT e.customer_id, e.name, e.country, e.status, e.effective_date, e.reference,
       e.kyc_expires_on, e.end_use_certificate, e.seq
FROM customer_event AS e
WHERE e.effective_date = (
    SELECT max(x.effective_date) FROM customer_event AS x
    WHERE x.customer_id = e.customer_id AND x.effective_date <= (SELECT as_of FROM ledger_clock));

-- Each lot's state on the ledger's clock: cleared iff its latest event is
-- 'pass'; capacity is the units of its latest 'pass' event.
CREATE VIEW lot_state AS
SELECT e.lot_id, e.chip, e.result AS latest_result, e.effective_date AS latest_date,
       (e.result = 'pass') AS cleared,
       coalesce((SELECT p.units FROM lot_event AS p
                 WHERE p.lot_id = e.lot_id AND p.result = 'pass'
                   AND p.effective_date <= (SELECT as_of FROM ledger_clock)
                 ORDER BY p.effective_date DESC LIMIT 1), 0) AS capacity_units
FROM lot_event AS e
WHERE e.effective_date = (
    SELECT max(x.effective_date) FROM lot_event AS x
    WHERE x.lot_id = e.lot_id AND x.effective_date <= (SELECT as_of FROM ledger_clock));
