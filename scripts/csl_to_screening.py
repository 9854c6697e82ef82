#!/usr/bin/env python3
"""Turn the Consolidated Screening List CSV (trade.gov) into a qledger
screening file: list,entry_id,name,alt_names,country.

Usage: python3 scripts/csl_to_screening.py consolidated.csv > csl.csv
       qledger screening import csl.csv --effective YYYY-MM-DD

The CSL CSV (http://api.trade.gov/static/consolidated_screening_list/consolidated.csv)
has the columns _id, source, entity_number, type, programs, name, title,
addresses, ..., alt_names, .... Its `source` is the list (e.g. "Entity List
(EL) - Bureau of Industry and Security"), `entity_number` the entry id (the
row's `_id` when empty, as it often is), `name` and `alt_names` (already
`;`-separated) the names; the country is the last part of the first address
("street, city, state, postal code, CN") when that is two letters. Rows
without a name are skipped; an entry id seen twice in one list keeps its
first row.
"""
import csv
import sys


def main(path: str) -> int:
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["list", "entry_id", "name", "alt_names", "country"])
    seen = set()
    with open(path, newline="", encoding="utf-8-sig") as handle:
        for row in csv.DictReader(handle):
            name = (row.get("name") or "").strip()
            if not name:
                continue
            source = (row.get("source") or "").strip() or "Consolidated Screening List"
            entry = (row.get("entity_number") or "").strip() or (row.get("_id") or "").strip()
            if not entry or (source, entry) in seen:
                continue
            seen.add((source, entry))
            alt = ";".join(a.strip() for a in (row.get("alt_names") or "").split(";") if a.strip())
            first_address = (row.get("addresses") or "").split(";")[0]
            country = first_address.split(",")[-1].strip()
            country = country if len(country) == 2 and country.isascii() and country.isalpha() else ""
            out.writerow([source[:128], entry[:64], name[:512], alt, country])
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
