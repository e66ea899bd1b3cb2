//! The state demo of the original prototype, grown up: save `weapon`, bulk-save
//! `planets`, read both back through the typed Dapr imports, and print
//! `Test successfully!` when they match what was saved.
//!
//! Run with `wasmdapr run state-demo.wasm` (the embedded SQLite store named
//! `statestore`), or `-- STORE` to use another store. A Dapr error is printed
//! with its code (`ERR_STATE_STORE_NOT_FOUND`, …) and exits 1.
//!
//! The second pass of the issue, the same scenario over plain HTTP to the
//! sidecar at 127.0.0.1:3500, waits for outbound `wasi:http` in the host.

use std::process::ExitCode;

use serde_json::{Value, json};
use wasmdapr_sdk::{Dapr, Error, SaveRequest};

fn main() -> ExitCode {
    let store = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "statestore".into());
    match scenario(&store) {
        Ok(true) => {
            println!("Test successfully!");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            eprintln!("Test failed: the values read back differ from those saved");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn scenario(store: &str) -> Result<bool, Error> {
    let dapr = Dapr::new();
    let state = dapr.state(store);
    let weapon = "Death Star";
    let planets = json!({"name": "Tatooine", "test": 123});

    println!("saving weapon = {weapon:?} in {store}");
    state.save("weapon", weapon)?;

    println!("bulk-saving planets = {planets}");
    state.save_many([SaveRequest::json("planets", &planets)?])?;

    let read_weapon: Option<String> = state.get("weapon")?;
    println!("read weapon = {read_weapon:?}");

    let read_planets = state
        .bulk_get::<Value>(&["planets"])?
        .into_iter()
        .next()
        .and_then(|item| item.value);
    match &read_planets {
        Some(p) => println!("read planets = {p}"),
        None => println!("read planets = (missing)"),
    }

    Ok(read_weapon.as_deref() == Some(weapon) && read_planets.as_ref() == Some(&planets))
}
