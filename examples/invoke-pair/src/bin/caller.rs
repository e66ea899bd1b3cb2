//! The caller of the invoke pair: a command that greets each name given on
//! its command line by invoking the `greeter` app (override with
//! `GREETER_APP_ID`) through the typed `invoke` import. The host finds the
//! greeter through name resolution and calls it through its sidecar.
//!
//! Prints one line per answer; exits 1 if a call could not be delivered or
//! the greeter did not answer 2xx.

use wasmdapr_sdk::{Dapr, Error};

fn main() {
    let target = std::env::var("GREETER_APP_ID").unwrap_or_else(|_| "greeter".into());
    let mut names: Vec<String> = std::env::args().skip(1).collect();
    if names.is_empty() {
        names.push("world".into());
    }
    let greeter = Dapr::new().invoke(&target);
    let mut failed = false;
    for name in &names {
        match greeter.post("hello", name.as_bytes()) {
            Ok(response) if response.is_success() => {
                println!("{}", response.text().unwrap_or_else(|e| e.to_string()));
            }
            Ok(response) => {
                failed = true;
                eprintln!(
                    "{target} answered {}: {}",
                    response.status,
                    String::from_utf8_lossy(&response.body)
                );
            }
            Err(Error { code, message, .. }) => {
                failed = true;
                eprintln!("cannot invoke {target}: {code}: {message}");
            }
        }
    }
    std::process::exit(i32::from(failed));
}
