//! Paths of the guest programs under `test-programs/`, built by this crate's
//! build script: `P1_<NAME>` (a WASI preview 1 core module), `P2_<NAME>` (a
//! WASI preview 2 component) for each Rust program, `WAT_<NAME>` for each
//! hand-written `.wat`; and [`foreach_guest!`], which lists them all.
//!
//! # Layout
//!
//! - `build.rs` builds the guests and generates the constants included here.
//! - `test-programs/` (outside this crate) holds their sources.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
