//! Input files: the strict CSV reader, single values with their limits,
//! the nightly sales import and the reference-file imports.

pub mod csv;
pub mod reference_import;
pub mod sales_import;
pub mod values;
