//! Pass 1: the scenario through the typed Dapr imports of `wasmdapr-sdk`.

use serde_json::Value;
use wasmdapr_sdk::{Dapr, Error, SaveRequest};

use crate::{PLANETS_KEY, ReadBack, WEAPON, WEAPON_KEY, planets};

/// Clears both keys, saves `weapon`, bulk-saves `planets`, reads both back.
/// A failed call is its Dapr error, `CODE: message`.
pub fn scenario(store: &str) -> Result<ReadBack, String> {
    let dapr = |e: Error| e.to_string();
    let state = Dapr::new().state(store);

    for key in [WEAPON_KEY, PLANETS_KEY] {
        state.delete(key).map_err(dapr)?;
        if state.get_bytes(key).map_err(dapr)?.is_some() {
            return Err(format!("{key} is still there after deleting it"));
        }
    }

    println!("saving {WEAPON_KEY} = {WEAPON:?}");
    state.save(WEAPON_KEY, WEAPON).map_err(dapr)?;

    let planets = planets();
    println!("bulk-saving {PLANETS_KEY} = {planets}");
    state
        .save_many([SaveRequest::json(PLANETS_KEY, &planets).map_err(dapr)?])
        .map_err(dapr)?;

    let weapon: Option<Value> = state.get(WEAPON_KEY).map_err(dapr)?;
    println!("read {WEAPON_KEY} = {}", shown(&weapon));

    let planets = state
        .bulk_get::<Value>(&[PLANETS_KEY])
        .map_err(dapr)?
        .into_iter()
        .next()
        .and_then(|item| item.value);
    println!("read {PLANETS_KEY} = {}", shown(&planets));

    Ok(ReadBack { weapon, planets })
}

/// A value read back, or `(missing)`.
pub fn shown(value: &Option<Value>) -> String {
    value
        .as_ref()
        .map_or_else(|| "(missing)".to_owned(), Value::to_string)
}
