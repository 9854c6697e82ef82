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
    fn the_embedded_schema_lists_every_kind_of_object() {
        let kinds: Vec<&str> = embedded().iter().map(|o| o.kind.as_str()).collect();
        for kind in ["table", "index", "trigger", "view"] {
            assert!(kinds.contains(&kind), "{kind}");
        }
        assert_eq!(fold("a  b\n\t c"), "a b c");
    }
}
