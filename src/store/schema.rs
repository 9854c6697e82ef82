//! The schema the binary embeds (`schema.sql`) as SQLite stores it, and the
//! upgrade of a ledger made by an earlier version to it, in place: tables
//! are added or rebuilt with every row copied as it is (entries keep their
//! columns and hashes, so the chain is unchanged), triggers and views are
//! made anew, derived tables filled from the entries.

use crate::error::{Error, Result};
use rusqlite::Connection;
use std::sync::OnceLock;

/// One object of a schema: table, index, trigger or view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaObject {
    /// `table`, `index`, `trigger` or `view`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its SQL as SQLite stores it.
    pub sql: String,
}

/// Runs of white space folded to one space, for comparing SQL texts.
pub fn fold(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The objects of `conn`'s main schema with SQL text (SQLite's own
/// automatic indexes have none), in `sqlite_master` order.
pub fn objects_of(conn: &Connection) -> Result<Vec<SchemaObject>> {
    let mut statement = conn.prepare(
        "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL \
         AND name NOT LIKE 'sqlite_%' ORDER BY rowid",
    )?;
    let objects = statement
        .query_map([], |row| {
            Ok(SchemaObject {
                kind: row.get(0)?,
                name: row.get(1)?,
                sql: row.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(objects)
}

/// The objects `schema.sql` creates, as SQLite stores them.
pub fn embedded() -> &'static [SchemaObject] {
    static OBJECTS: OnceLock<Vec<SchemaObject>> = OnceLock::new();
    OBJECTS.get_or_init(|| {
        let conn = Connection::open_in_memory().expect("an in-memory database opens");
        conn.execute_batch(crate::store::ledger::SCHEMA_SQL)
            .expect("schema.sql is valid SQL (a unit test runs it)");
        objects_of(&conn).expect("the schema can be listed")
    })
}

/// The objects `schema.sql` creates, read from its text (the statements
/// from `CREATE` to their `;`, as SQLite stores them), with their SQL
/// folded: what every command that writes, and `report`, compares the
/// file with (microseconds; a unit test checks it against SQLite's list).
pub fn embedded_folded() -> &'static [SchemaObject] {
    static OBJECTS: OnceLock<Vec<SchemaObject>> = OnceLock::new();
    OBJECTS.get_or_init(|| {
        create_statements(crate::store::ledger::SCHEMA_SQL)
            .into_iter()
            .filter_map(|sql| {
                let words: Vec<&str> = sql.split_whitespace().take(4).collect();
                let (kind, name) = match words.as_slice() {
                    ["CREATE", "UNIQUE", "INDEX", name, ..] => ("index", *name),
                    ["CREATE", kind, name, ..] => (*kind, *name),
                    _ => return None,
                };
                Some(SchemaObject {
                    kind: kind.to_ascii_lowercase(),
                    name: name.to_string(),
                    sql: fold(&sql),
                })
            })
            .collect()
    })
}

/// The `CREATE …` statements of a schema text, without their final `;`.
fn create_statements(text: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_none() && !trimmed.starts_with("CREATE ") {
            continue; // comments and pragmas between statements
        }
        let statement = current.get_or_insert_with(String::new);
        statement.push_str(line);
        statement.push('\n');
        if trimmed.ends_with(';') && !trimmed.starts_with("--") {
            let done = current.take().unwrap_or_default();
            statements.push(done.trim_end().trim_end_matches(';').to_string());
        }
    }
    statements
}

/// The first difference between the schema of `conn` and the embedded one
/// (SPEC §3.15 item 2): an object added, dropped or altered, named.
pub fn first_difference(conn: &Connection) -> Result<Option<String>> {
    let present = objects_of(conn)?;
    let expected = embedded_folded();
    for object in &present {
        match expected
            .iter()
            .find(|e| e.kind == object.kind && e.name == object.name)
        {
            None => {
                return Ok(Some(format!(
                    "{} {} was added to the schema",
                    object.kind, object.name
                )))
            }
            Some(e) if !e.sql.split(' ').eq(object.sql.split_whitespace()) => {
                return Ok(Some(format!(
                    "{} {} was altered (its SQL is not the schema's)",
                    object.kind, object.name
                )))
            }
            Some(_) => {}
        }
    }
    for object in expected {
        if !present
            .iter()
            .any(|p| p.kind == object.kind && p.name == object.name)
        {
            return Ok(Some(format!(
                "{} {} was dropped from the schema",
                object.kind, object.name
            )));
        }
    }
    Ok(None)
}

/// Refuses (integrity, exit 3) a ledger whose schema is not the embedded
/// one: a dropped trigger would let entries be rewritten.
pub fn check(conn: &Connection) -> Result<()> {
    match first_difference(conn)? {
        None => Ok(()),
        Some(difference) => Err(Error::Integrity(format!(
            "the ledger's schema was changed: {difference}; qledger will not work on it (run qledger verify)"
        ))),
    }
}

fn embedded_of_kind(kind: &str) -> impl Iterator<Item = &'static SchemaObject> + '_ {
    embedded().iter().filter(move |object| object.kind == kind)
}

/// Brings the schema of a ledger made by an earlier version to the embedded
/// one, in the caller's write transaction. Returns the tables it created
/// (a derived table among them must then be filled from the entries).
pub fn upgrade(conn: &Connection) -> Result<Vec<String>> {
    let present = objects_of(conn)?;
    for object in present
        .iter()
        .filter(|o| o.kind == "view" || o.kind == "trigger")
    {
        conn.execute_batch(&format!("DROP {} {}", object.kind, object.name))?;
    }
    let mut created = Vec::new();
    for table in embedded_of_kind("table") {
        match present
            .iter()
            .find(|o| o.kind == "table" && o.name == table.name)
        {
            None => {
                conn.execute_batch(&table.sql)?;
                created.push(table.name.clone());
            }
            Some(old) if fold(&old.sql) != fold(&table.sql) => rebuild(conn, table)?,
            Some(_) => {}
        }
    }
    // Indexes: drop those that are not the embedded ones (or no longer
    // exist there), then create every missing one.
    let mut indexes: Vec<String> = Vec::new();
    for index in objects_of(conn)?.into_iter().filter(|o| o.kind == "index") {
        let same = embedded_of_kind("index")
            .any(|e| e.name == index.name && fold(&e.sql) == fold(&index.sql));
        if same {
            indexes.push(index.name);
        } else {
            conn.execute_batch(&format!("DROP INDEX {}", index.name))?;
        }
    }
    for index in embedded_of_kind("index") {
        if !indexes.contains(&index.name) {
            conn.execute_batch(&index.sql)?;
        }
    }
    for object in embedded_of_kind("trigger").chain(embedded_of_kind("view")) {
        conn.execute_batch(&object.sql)?;
    }
    Ok(created)
}

/// Replaces a table whose definition changed by the embedded one, every
/// row copied with the columns both have (new columns stay NULL).
fn rebuild(conn: &Connection, table: &SchemaObject) -> Result<()> {
    let old = format!("{}_before_upgrade", table.name);
    conn.execute_batch(&format!("ALTER TABLE {} RENAME TO {old}", table.name))?;
    conn.execute_batch(&table.sql)?;
    let columns = |name: &str| -> Result<Vec<String>> {
        Ok(conn
            .prepare(&format!(
                "SELECT name FROM pragma_table_info('{name}') ORDER BY cid"
            ))?
            .query_map([], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?)
    };
    let before = columns(&old)?;
    let common: Vec<String> = columns(&table.name)?
        .into_iter()
        .filter(|column| before.contains(column))
        .collect();
    if common.is_empty() {
        return Err(Error::Integrity(format!(
            "{} shares no column with the table of this version",
            table.name
        )));
    }
    let list = common.join(", ");
    conn.execute_batch(&format!(
        "INSERT INTO {} ({list}) SELECT {list} FROM {old} ORDER BY rowid; DROP TABLE {old};",
        table.name
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_text_read_without_sqlite_is_what_sqlite_stores() {
        let mut from_sqlite: Vec<SchemaObject> = embedded()
            .iter()
            .map(|o| SchemaObject {
                sql: fold(&o.sql),
                ..o.clone()
            })
            .collect();
        let mut from_text = embedded_folded().to_vec();
        let key = |o: &SchemaObject| (o.kind.clone(), o.name.clone());
        from_sqlite.sort_by_key(key);
        from_text.sort_by_key(key);
        assert_eq!(from_text, from_sqlite);
    }

    #[test]
    fn the_embedded_schema_lists_every_kind_of_object() {
        let kinds: Vec<&str> = embedded().iter().map(|o| o.kind.as_str()).collect();
        for kind in ["table", "index", "trigger", "view"] {
            assert!(kinds.contains(&kind), "{kind}");
        }
        assert_eq!(fold("a  b\n\t c"), "a b c");
    }
}
