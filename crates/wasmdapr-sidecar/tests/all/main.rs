//! The sidecar started as a library, with no command line: black-box tests
//! over its real ports.

mod delivery;
mod outbox;
mod poison;
mod sidecar;
