//! What the ledger records, kind by kind: policy versions, customer
//! events, lot events, sales; their rows, parsing and lookups.

pub mod customers;
pub mod lots;
pub mod policy;
pub mod sales;
