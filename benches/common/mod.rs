//! Helpers the benchmarks share.
#![allow(dead_code)]

use std::time::Duration;

/// The `fraction` percentile (nearest rank) of `samples`.
pub fn percentile(samples: &mut [Duration], fraction: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 * fraction).ceil() as usize).clamp(1, samples.len()) - 1;
    samples[index]
}

/// Milliseconds, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
