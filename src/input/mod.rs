//! Input files: the strict CSV reader, single values with their limits,
//! the nightly sales import (with the rows it keeps between passes) and
//! the reference-file imports.

pub mod csv;
pub mod kept_rows;
pub mod reference_import;
pub mod sales_import;
pub mod values;
