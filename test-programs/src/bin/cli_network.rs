//! Tries to open a TCP connection to the address in `argv[1]` and to resolve
//! a host name: proves a guest has no network unless granted. Prints
//! `connect: denied` / `lookup: denied`, or `connected` if it got through.
use std::net::{TcpStream, ToSocketAddrs};

fn main() {
    let addr = std::env::args().nth(1).expect("usage: cli_network ADDR");
    match TcpStream::connect(&addr) {
        Ok(_) => println!("connect: connected"),
        Err(e) => println!("connect: denied ({e})"),
    }
    match "localhost:80".to_socket_addrs().map(|addrs| addrs.count()) {
        Ok(0) => println!("lookup: denied (no addresses)"),
        Ok(_) => println!("lookup: resolved"),
        Err(e) => println!("lookup: denied ({e})"),
    }
}
