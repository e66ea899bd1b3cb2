//! Prints a greeting: the smallest useful app.
fn main() {
    println!("hello from wasm");
}
