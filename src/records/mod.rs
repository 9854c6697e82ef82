//! What the ledger records, kind by kind: policy versions, customer
//! events, lot events, sales, supply attestations, screening lists; their rows, parsing and lookups.

pub mod customers;
pub mod lots;
pub mod policy;
pub mod sales;
pub mod screening;
pub mod supply;
pub mod tokens;
