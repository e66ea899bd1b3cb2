//! Does nothing: the benchmark's measure of instantiate + run.
fn main() {}
