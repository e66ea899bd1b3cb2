//! Panics inside a named function: a Rust panic aborts, which is a trap,
//! and the backtrace must name the function.
#[inline(never)]
fn explode_here(n: usize) -> usize {
    if n < 1000 {
        panic!("guest panicked on purpose");
    }
    n
}

fn main() {
    let n = std::env::args().count();
    println!("{}", explode_here(n));
}
