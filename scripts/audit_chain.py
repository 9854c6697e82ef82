#!/usr/bin/env python3
"""Recompute a qledger chain head from the SQLite file, independently of qledger.

Usage: python3 scripts/audit_chain.py LEDGER.sqlite
Prints N:HEX (compare with `qledger digest`); exits 1 at the first entry
whose stored hash differs from the recomputed one.

Encoding (README, "Canonical encoding"): for entry n in table T, netstrings
of the decimal seq, the table name, then every column of `SELECT *` after
seq except the final `hash` column; INTEGER as decimal ASCII, TEXT as UTF-8,
NULL as the two bytes "~,". hash_n = SHA-256(hash_{n-1} || bytes), hash_0 = 32 zero bytes.
"""
import hashlib
import sqlite3
import sys

TABLES = ["ledger_settings", "policy_version", "customer_event", "lot_event", "sale",
          "hold", "hold_release", "remittance_payment", "period_close", "import_batch",
          "payment_reversal", "policy_withdrawal", "late_entry"]


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


def main() -> int:
    conn = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
    entries = []
    for table in TABLES:
        for row in conn.execute(f"SELECT * FROM {table}"):
            seq, columns, stored = row[0], row[1:-1], row[-1]
            data = encode(seq) + netstring(table.encode()) + b"".join(encode(v) for v in columns)
            entries.append((seq, data, stored))
    entries.sort(key=lambda e: e[0])
    previous = bytes(32)
    for expected, (seq, data, stored) in enumerate(entries, start=1):
        if seq != expected:
            print(f"entry {expected} is missing", file=sys.stderr)
            return 1
        previous = hashlib.sha256(previous + data).digest()
        if previous != stored:
            print(f"entry {seq} does not match its stored hash", file=sys.stderr)
            return 1
    print(f"{len(entries)}:{previous.hex()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
