//! qledger: an append-only, tamper-evident SQLite ledger for exports of
//! controlled AI accelerators. See ARCHITECTURE.md for the map: each
//! folder is a layer, named after what it does.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod commands;
pub mod desk;
pub mod error;
pub mod input;
pub mod money;
pub mod period;
pub mod records;
pub mod report;
pub mod rules;
pub mod service;
pub mod store;
pub mod synthetic;
pub mod trace;

pub use error::{Error, Result, RowProblem, Rule};
