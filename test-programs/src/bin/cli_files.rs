//! Reads `<dir>/input.txt`, writes its upper-cased contents to
//! `<dir>/output.txt`, and reports whether paths outside the grant can be
//! read: proves `--dir` grants exactly one directory and nothing else.
use std::fs;

fn main() {
    let dir = std::env::args().nth(1).expect("usage: cli_files DIR");
    match fs::read_to_string(format!("{dir}/input.txt")) {
        Ok(text) => {
            fs::write(format!("{dir}/output.txt"), text.to_uppercase()).expect("write output");
            println!("copied {} bytes", text.len());
        }
        Err(e) => println!("cannot read input: {e}"),
    }
    for outside in ["/etc/passwd", "/", "../"] {
        match fs::read_dir(outside).map(|_| ()).or_else(|_| fs::read(outside).map(|_| ())) {
            Ok(()) => println!("outside {outside}: readable"),
            Err(_) => println!("outside {outside}: denied"),
        }
    }
}
