//! Time-boxed property tests (proptest) for the manager's request validation
//! and for every parser of user input.
//!
//! Each target in `tests/fuzz/` hands a strategy and a property to [`run`],
//! which runs batches of generated cases until the time budget is spent:
//! `HERD_FUZZ_SECONDS` seconds per target, 2 when the variable is unset.
//! A failure panics with the minimal failing input and the seed that
//! replays it.

use std::fmt::Debug;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};

pub mod strings;

/// Environment variable with the time budget of each target, in seconds.
pub const SECONDS_VARIABLE: &str = "HERD_FUZZ_SECONDS";
/// Environment variable with the seed of the first batch, to replay a failure.
pub const SEED_VARIABLE: &str = "HERD_FUZZ_SEED";
/// Budget of each target when `HERD_FUZZ_SECONDS` is unset, short enough
/// for the normal test run.
const DEFAULT_SECONDS: u64 = 2;
/// Cases in one batch. The clock is read between batches, so a target
/// overruns its budget by at most one batch.
const CASES_PER_BATCH: u32 = 256;

/// Runs `property` on values from `strategy` for the time budget.
///
/// Batch `i` uses seed `first + i`, where `first` comes from
/// `HERD_FUZZ_SEED` or the clock. A panic inside `property` counts as a
/// failure, as do `prop_assert!` failures.
///
/// # Panics
///
/// Panics when the property fails, with `name`, the reason, the shrunk
/// input and the seed of the failing batch, or when `HERD_FUZZ_SECONDS` or
/// `HERD_FUZZ_SEED` is not a whole number.
pub fn run<S>(name: &str, strategy: S, property: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: Debug,
{
    let budget = budget();
    let first_seed = first_seed();
    let started = Instant::now();
    let mut cases: u64 = 0;

    for batch in 0u64.. {
        let seed = first_seed.wrapping_add(batch);
        let config = Config {
            cases: CASES_PER_BATCH,
            rng_seed: RngSeed::Fixed(seed),
            // The seed in the panic message replays a failure, so nothing is
            // written next to the sources.
            failure_persistence: None,
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        match runner.run(&strategy, &property) {
            Ok(()) => cases += u64::from(CASES_PER_BATCH),
            Err(TestError::Fail(reason, input)) => panic!(
                "fuzz target {name} failed in batch {batch}, after {cases} passing cases: \
                 {reason}\n\
                 minimal failing input: {input:#?}\n\
                 replay with {SEED_VARIABLE}={seed}"
            ),
            Err(TestError::Abort(reason)) => {
                panic!("fuzz target {name} aborted (seed {seed}): {reason}")
            }
        }
        if started.elapsed() >= budget {
            break;
        }
    }
    println!(
        "fuzz target {name}: {cases} cases in {:.1} s, first seed {first_seed}",
        started.elapsed().as_secs_f64()
    );
}

fn budget() -> Duration {
    let seconds = whole_number(SECONDS_VARIABLE).unwrap_or(DEFAULT_SECONDS);
    Duration::from_secs(seconds)
}

fn first_seed() -> u64 {
    whole_number(SEED_VARIABLE).unwrap_or_else(|| {
        // Any value will do: it only has to differ between runs.
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        since_epoch.as_secs() ^ (u64::from(since_epoch.subsec_nanos()) << 32)
    })
}

/// Reads `variable` as a whole number, or returns `None` when it is unset.
fn whole_number(variable: &str) -> Option<u64> {
    let text = std::env::var(variable).ok()?;
    match text.parse() {
        Ok(number) => Some(number),
        Err(_) => panic!("invalid {variable} {text:?}: expected a whole number, such as 60"),
    }
}
