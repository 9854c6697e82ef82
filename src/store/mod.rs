//! The ledger file: schema, entries and their canonical encoding, the hash
//! chain, appending, and `verify`.

pub mod checkpoint;
pub mod clock;
pub mod entry;
pub mod ledger;
pub mod replay;
pub mod schema;
pub mod verify;
