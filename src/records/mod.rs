//! What the ledger records, kind by kind: policy versions, customer
//! events, lot events, sales, supply attestations, screening lists; their rows, parsing and lookups.

pub mod customers;
pub mod lots;
pub mod policy;
pub mod sales;
pub mod screening;
pub mod supply;
pub mod tokens;

/// Every row of a reference table with its entry number, in entry order
/// (`verify`'s replay): `sql` selects the kind's columns and then `seq`
/// (at index `seq_at`); `from_row` reads the columns, `from_stored`
/// checks them.
pub(crate) fn all_with_seq<S, T>(
    conn: &rusqlite::Connection,
    sql: &str,
    seq_at: usize,
    from_row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<S>,
    from_stored: fn(S) -> crate::error::Result<T>,
) -> crate::error::Result<Vec<(i64, T)>> {
    let stored = conn
        .prepare(sql)?
        .query_map([], |row| Ok((row.get::<_, i64>(seq_at)?, from_row(row)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    stored
        .into_iter()
        .map(|(seq, stored)| Ok((seq, from_stored(stored)?)))
        .collect()
}
