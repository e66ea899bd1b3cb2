//! Per-instance resource limits: memory (a store limiter) and time (epoch deadlines).
//!
//! Limits are enforced by Wasmtime mechanisms that cost nothing on the hot path:
//! the memory limit is checked only when a guest grows a memory, and the time
//! limit by the epoch counter that the engine's ticker thread advances (see
//! [`crate::engine`]). A guest that crosses either is *stopped* (the growth
//! becomes a trap), never allowed to limp on: a guest that cannot allocate
//! usually aborts anyway, and the user deserves to learn which limit it hit.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use wasmtime::ResourceLimiter;

/// A size in bytes, parsed from `65536`, `64KiB`, `256MiB`, `1GiB` (or the SI
/// spellings `KB`, `MB`, `GB`, which mean powers of 1000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// `n` mebibytes.
    pub const fn mib(n: u64) -> Self {
        Self(n * 1024 * 1024)
    }
}

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("`{s}` is not a size: expected e.g. `256MiB`, `1GiB`, `65536`"))?;
        let factor: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" | "K" | "k" => 1 << 10,
            "MiB" | "M" => 1 << 20,
            "GiB" | "G" => 1 << 30,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            other => {
                return Err(format!(
                    "unknown size unit `{other}` in `{s}`: use B, KiB, MiB, GiB, KB, MB or GB"
                ));
            }
        };
        n.checked_mul(factor)
            .map(ByteSize)
            .ok_or_else(|| format!("size `{s}` is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
        for (factor, unit) in UNITS {
            if self.0 >= factor && self.0.is_multiple_of(factor) {
                return write!(f, "{} {unit}", self.0 / factor);
            }
        }
        write!(f, "{} bytes", self.0)
    }
}

/// Parses a duration such as `500ms`, `2s`, `1m30s`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration ({e}): expected e.g. `500ms`, `2s`, `1m`"))
}

/// The limits one guest instance runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest total linear memory one instance may hold, summed over its memories.
    pub max_memory: ByteSize,
    /// Wall-clock deadline for one run (for `run`) or one request (for served apps).
    pub timeout: Option<Duration>,
}

impl Limits {
    /// The default memory limit of one instance.
    pub const DEFAULT_MAX_MEMORY: ByteSize = ByteSize::mib(256);
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_memory: Self::DEFAULT_MAX_MEMORY,
            timeout: None,
        }
    }
}

/// The error a memory growth past the limit traps with; a run finds it in the
/// trap's cause chain and reports [`crate::HostError::MemoryLimit`].
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("memory limit of {limit} exceeded: the guest asked for {requested} bytes")]
pub struct MemoryLimitExceeded {
    /// The configured limit.
    pub limit: ByteSize,
    /// The total the guest would have held after the growth.
    pub requested: u64,
}

/// A [`ResourceLimiter`] that caps the *sum* of an instance's linear memories.
///
/// Capping each memory separately would let a module with many memories
/// multiply the limit; the sum is what the user means by "memory".
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    limit: ByteSize,
    in_use: u64,
}

impl MemoryLimiter {
    pub(crate) fn new(limit: ByteSize) -> Self {
        Self { limit, in_use: 0 }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = (desired - current) as u64;
        let requested = self.in_use.saturating_add(growth);
        if requested > self.limit.0 {
            return Err(MemoryLimitExceeded {
                limit: self.limit,
                requested,
            }
            .into());
        }
        self.in_use = requested;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Table sizes are bounded by the engine's pooling configuration; the
        // declared maximum still applies.
        Ok(maximum.is_none_or(|max| desired <= max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes parse in binary and SI units and reject what they cannot read.
    #[test]
    fn byte_size_parses_units() {
        assert_eq!("65536".parse::<ByteSize>().unwrap(), ByteSize(65536));
        assert_eq!("64KiB".parse::<ByteSize>().unwrap(), ByteSize(65536));
        assert_eq!("256MiB".parse::<ByteSize>().unwrap(), ByteSize::mib(256));
        assert_eq!("1GiB".parse::<ByteSize>().unwrap(), ByteSize(1 << 30));
        assert_eq!("2MB".parse::<ByteSize>().unwrap(), ByteSize(2_000_000));
        assert!(
            "12XB"
                .parse::<ByteSize>()
                .unwrap_err()
                .contains("unknown size unit")
        );
        assert!("lots".parse::<ByteSize>().is_err());
        assert!("99999999999999GiB".parse::<ByteSize>().is_err());
        assert_eq!(ByteSize::mib(256).to_string(), "256 MiB");
        assert_eq!(ByteSize(1000).to_string(), "1000 bytes");
    }

    /// The limiter sums growth over all memories and refuses the growth that crosses the limit.
    #[test]
    fn limiter_caps_the_sum_of_memories() {
        let mut limiter = MemoryLimiter::new(ByteSize(100));
        assert!(limiter.memory_growing(0, 60, None).unwrap());
        // A second memory: 60 + 40 = 100 is still within the limit.
        assert!(limiter.memory_growing(0, 40, None).unwrap());
        let err = limiter.memory_growing(60, 61, None).unwrap_err();
        let exceeded = err.downcast_ref::<MemoryLimitExceeded>().unwrap();
        assert_eq!(exceeded.requested, 101);
    }

    /// Durations read the way users write them.
    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("soon").is_err());
    }
}
