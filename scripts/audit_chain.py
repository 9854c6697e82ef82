#!/usr/bin/env python3
"""Recompute a qledger chain head from the SQLite file, independently of qledger.

Usage: python3 scripts/audit_chain.py LEDGER.sqlite [CHECKPOINT.json ...]

Prints N:HEX (compare with `qledger digest`); exits 1 at the first entry
whose stored hash differs from the recomputed one, 2 when the file's tables
do not have exactly the columns listed below (a renamed or reordered column
must not silently change what is hashed). With checkpoints, also checks each
one's Ed25519 signature (with the `openssl` command, OpenSSL 3), that it is
of this ledger, and that the recomputed chain has its head at its entry.

Encoding (README, "Canonical encoding"): for entry n in table T, the
netstrings of the decimal seq, the table name, then each column of
COLUMNS[T] in that order (INTEGER as decimal ASCII, TEXT as UTF-8, NULL as
the two bytes "~,"), then for each column of TRAILING[T] (columns added by
later schema versions, then actor and recorded_at) that is not NULL, the
netstring of its name followed by the netstring of its value.
hash_n = SHA-256(hash_{n-1} || bytes), hash_0 = 32 zero bytes.
"""
import base64
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile

COLUMNS = {
    "ledger_settings": ["schema_version", "period_kind", "restricted_markets", "created_on"],
    "policy_version": ["chip", "effective_from", "restricted_allowed", "cap_ratio", "cap_window",
                       "remittance_rate", "lab_test_required", "customer_approval_required", "source"],
    "customer_event": ["customer_id", "name", "country", "status", "effective_date", "reference"],
    "lot_event": ["lot_id", "chip", "units", "lab", "certificate_id", "result", "effective_date"],
    "sale": ["record_id", "kind", "sale_date", "chip", "market", "customer_id", "units",
             "unit_price_usd_e4", "lot_id", "order_ref", "reverses", "hold_seq", "drawn_units",
             "accepted_rules", "accepted_reason"],
    "hold": ["order_ref", "chip", "market", "customer_id", "lot_id", "units", "planned_date",
             "reserved_on", "expires_on"],
    "hold_release": ["hold_seq", "order_ref", "released_units", "released_on"],
    "remittance_payment": ["period", "amount_usd_e4", "paid_on", "reference", "recorded_on"],
    "period_close": ["period", "closed_on", "figures", "head_entries", "head_hash"],
    "import_batch": ["file_kind", "file_name", "file_sha256", "row_count", "entries_from",
                     "entries_to", "imported_on"],
    "payment_reversal": ["payment_seq", "period", "reference", "reason", "reversed_on"],
    "policy_withdrawal": ["version_seq", "chip", "effective_from", "reason", "withdrawn_on"],
    "late_entry": ["sale_seq", "period", "close_seq", "reason"],
    "supply_attestation": ["chip", "period", "us_inventory_units", "us_open_orders_units",
                           "attested_on", "attested_by", "reference"],
    "screening_entry": ["effective_from", "list", "entry_id", "name", "alt_names", "country"],
    "screening_snapshot": ["effective_from", "row_count"],
    "screening_clearance": ["customer_id", "list", "entry_id", "reason", "cleared_on"],
    "token_event": ["event", "name", "role", "expires_on", "secret_sha256", "event_on"],
}
# Columns added to a kind by a later schema version (NULL in older entries).
ADDED = {
    "policy_version": ["us_supply_attestation_required", "end_use_certificate_required"],
    "customer_event": ["kyc_expires_on", "end_use_certificate"],
}
WITH_ACTOR = {"hold", "hold_release", "remittance_payment", "period_close", "import_batch",
              "payment_reversal", "policy_withdrawal", "screening_clearance", "token_event"}
TRAILING = {table: ADDED.get(table, []) + (["actor", "recorded_at"] if table in WITH_ACTOR else [])
            for table in COLUMNS}
# The fixed DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410).
ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


def netstring(data: bytes) -> bytes:
    return str(len(data)).encode() + b":" + data + b","


def encode(value) -> bytes:
    if value is None:
        return b"~,"
    if isinstance(value, int):
        return netstring(str(value).encode())
    if isinstance(value, str):
        return netstring(value.encode("utf-8"))
    raise ValueError(f"unexpected value {value!r}")


def check_columns(conn) -> str:
    """The first table whose columns differ from the lists above, or ''."""
    for table, columns in COLUMNS.items():
        found = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
        expected = ["seq"] + columns + ["hash"] + TRAILING[table]
        if found != expected:
            return f"{table} has columns {found}, expected {expected}"
    return ""


def chain(conn):
    """Every entry's recomputed hash, in order; raises at the first fault."""
    entries = []
    for table, columns in COLUMNS.items():
        actor = TRAILING[table]
        listed = ", ".join(["seq"] + columns + ["hash"] + actor)
        for row in conn.execute(f"SELECT {listed} FROM {table}"):
            seq, values = row[0], row[1:1 + len(columns)]
            stored, later = row[1 + len(columns)], row[2 + len(columns):]
            data = encode(seq) + netstring(table.encode()) + b"".join(encode(v) for v in values)
            for name, value in zip(actor, later):
                if value is not None:
                    data += netstring(name.encode()) + encode(value)
            entries.append((seq, data, stored))
    entries.sort(key=lambda e: e[0])
    hashes, previous = [], bytes(32)
    for expected, (seq, data, stored) in enumerate(entries, start=1):
        if seq != expected:
            raise ValueError(f"entry {expected} is missing")
        previous = hashlib.sha256(previous + data).digest()
        if previous != stored:
            raise ValueError(f"entry {seq} does not match its stored hash")
        hashes.append(previous)
    return hashes


def check_checkpoint(path: str, hashes) -> str:
    """'' when the checkpoint is validly signed, of this ledger, and its head is in the chain."""
    c = json.load(open(path))
    statement = (f"qledger-checkpoint/v1\n{c['ledger_id']}\n{c['entries']}\n"
                 f"{c['head']}\n{c['signed_at']}\n").encode()
    with tempfile.TemporaryDirectory() as work:
        files = {"statement": statement, "signature": base64.b64decode(c["signature"]),
                 "public.der": ED25519_SPKI_PREFIX + bytes.fromhex(c["public_key"])}
        for name, data in files.items():
            with open(os.path.join(work, name), "wb") as out:
                out.write(data)
        verified = subprocess.run(
            ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "public.der", "-keyform", "DER",
             "-rawin", "-in", "statement", "-sigfile", "signature"],
            cwd=work, capture_output=True)
    if verified.returncode != 0:
        return f"{path}: the signature does not verify"
    if not hashes or hashes[0].hex() != c["ledger_id"]:
        return f"{path}: a checkpoint of another ledger"
    n = c["entries"]
    if n > len(hashes):
        return f"{path}: names entry {n}, the ledger holds {len(hashes)}: entries were removed"
    if hashes[n - 1].hex() != c["head"]:
        return f"{path}: the chain at entry {n} is not its head: entries were rewritten"
    return ""


def main() -> int:
    conn = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
    problem = check_columns(conn)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    try:
        hashes = chain(conn)
    except ValueError as fault:
        print(fault, file=sys.stderr)
        return 1
    for checkpoint in sys.argv[2:]:
        problem = check_checkpoint(checkpoint, hashes)
        if problem:
            print(problem, file=sys.stderr)
            return 1
    print(f"{len(hashes)}:{hashes[-1].hex() if hashes else bytes(32).hex()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
