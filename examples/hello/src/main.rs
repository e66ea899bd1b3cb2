//! The first demo: greets, then shows what the app was granted. Run with
//! `wasmdapr run --env NAME=you hello.wasm -- some args`: only what the
//! command line grants is visible; everything else is denied.

fn main() {
    let name = std::env::var("NAME").unwrap_or_else(|_| "world".into());
    println!("Hello, {name}, from a WebAssembly component!");
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("arguments granted: {args:?}");
    println!(
        "environment granted: {} variable(s)",
        std::env::vars().count()
    );
    match std::fs::read_dir("/") {
        Ok(_) => println!("files: the root directory is visible"),
        Err(_) => println!("files: none granted"),
    }
    match std::net::TcpStream::connect("127.0.0.1:80") {
        Ok(_) => println!("network: connected"),
        Err(_) => println!("network: denied"),
    }
}
