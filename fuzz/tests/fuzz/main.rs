//! Fuzz targets: one `#[test]` per parser of user input, each running
//! generated inputs for `HERD_FUZZ_SECONDS` seconds (2 when unset).
//!
//! They all live in this one test binary so that `--test-threads` runs
//! them in parallel.

mod endpoint;
mod identity;
mod names;
mod rlimits;
mod units;
mod validate;
mod worker_config;
