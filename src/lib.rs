//! qledger: an append-only, tamper-evident SQLite ledger for exports of
//! controlled AI accelerators. See ARCHITECTURE.md for the map.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod csvin;
pub mod entry;
pub mod error;
pub mod ledger;
pub mod money;
pub mod period;
pub mod values;

pub use error::{Error, Result, RowProblem, Rule};
pub mod customers;
pub mod desk;
pub mod facts;
pub mod import;
pub mod imports;
pub mod lots;
pub mod policy;
pub mod report;
pub mod rules;
pub mod sales;
pub mod synthetic;
pub mod trace;
pub mod verify;
