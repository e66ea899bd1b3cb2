//! The state demo of the original prototype, grown up. The same scenario
//! runs twice, on the same store and keys:
//!
//! 1. through the typed Dapr imports (`wasmdapr-sdk`, no network at all);
//! 2. through plain HTTP to the Dapr HTTP API (`wasi:http/outgoing-handler`),
//!    as any Dapr app would call its sidecar.
//!
//! Each pass first deletes `weapon` and `planets` and checks they are gone,
//! so what it reads back is what it saved itself, not what the other pass
//! (or an earlier run) left. It then saves `weapon` = "Death Star",
//! bulk-saves `planets` = {"name":"Tatooine","test":123}, reads both back and
//! prints `Test successfully!` when they match.
//!
//! The HTTP pass finds the sidecar as Dapr SDKs do: `DAPR_HTTP_ENDPOINT`,
//! else `http://127.0.0.1:$DAPR_HTTP_PORT`, else `http://127.0.0.1:3500`.
//! `wasmdapr run` puts those variables in the app's environment as part of
//! its implicit Dapr grant.
//!
//! Run with `wasmdapr run state-demo.wasm` (the embedded SQLite store named
//! `statestore`), or `-- STORE` to use another store. Both passes always
//! run; a failure is printed on stderr with its Dapr error code
//! (`ERR_STATE_STORE_NOT_FOUND`, …) and the exit code is 1.

#[cfg(target_env = "p2")]
mod http;
mod typed;

use std::process::ExitCode;

use serde_json::{Value, json};

/// The key of the first value.
const WEAPON_KEY: &str = "weapon";
/// The key of the bulk-saved value.
const PLANETS_KEY: &str = "planets";
/// The value saved under [`WEAPON_KEY`].
const WEAPON: &str = "Death Star";

/// The value saved under [`PLANETS_KEY`].
fn planets() -> Value {
    json!({"name": "Tatooine", "test": 123})
}

/// What a pass read back after saving.
struct ReadBack {
    weapon: Option<Value>,
    planets: Option<Value>,
}

impl ReadBack {
    /// Whether both values are exactly those saved.
    fn matches(&self) -> bool {
        self.weapon.as_ref() == Some(&json!(WEAPON)) && self.planets.as_ref() == Some(&planets())
    }
}

fn main() -> ExitCode {
    let store = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "statestore".into());
    println!("pass 1: the typed Dapr imports, store {store}");
    let typed = report(typed::scenario(&store));
    #[cfg(target_env = "p2")]
    let http = match http::DaprHttp::from_env() {
        Ok(dapr) => {
            println!(
                "pass 2: the Dapr HTTP API at {}, store {store}",
                dapr.endpoint()
            );
            report(dapr.scenario(&store))
        }
        Err(e) => {
            println!("pass 2: the Dapr HTTP API");
            report(Err(e))
        }
    };
    #[cfg(not(target_env = "p2"))]
    let http = {
        println!("pass 2: the Dapr HTTP API");
        report(Err("it needs wasm32-wasip2 (wasi:http)".to_owned()))
    };
    if typed && http {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Prints the outcome of one pass; true when it succeeded.
fn report(outcome: Result<ReadBack, String>) -> bool {
    match outcome {
        Ok(read) if read.matches() => {
            println!("Test successfully!");
            true
        }
        Ok(_) => {
            eprintln!("Test failed: the values read back differ from those saved");
            false
        }
        Err(e) => {
            eprintln!("error: {e}");
            false
        }
    }
}
