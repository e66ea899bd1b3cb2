// The prototype's scenario, through our Dapr state client: save `weapon`,
// bulk-save `planets`, read both back and compare, then show that a
// deleted key is gone. Any failure is printed to stderr naming the
// operation and the cause, and the app exits with 1.
//
// The sidecar is the one on 127.0.0.1 at `DAPR_HTTP_PORT` (Dapr's
// convention; `wasmdapr run` passes its sidecar's port), else 3500.

import { DEFAULT_HTTP_PORT, DaprError, StateClient, StateItem } from "./dapr";

const STORE = "statestore";
const WEAPON = "\"Death Star\"";
const PLANETS = "{\"name\":\"Tatooine\",\"test\":123}";
const SCRATCH_KEY = "scratch";

/**
 * Prints `message` to stderr and ends the app with exit code 1. (Not
 * `console.error`: the WASI shim writes that to stdout, prefixed `Error: `.)
 */
function fail(message: string): void {
  process.stderr.write("error: " + message + "\n");
  process.exit(1);
  // proc_exit does not return; if a host let it, stop here all the same.
  unreachable();
}

function check(error: DaprError | null): void {
  if (error !== null) fail(error.toString());
}

/** The port in `DAPR_HTTP_PORT`, or the default; a bad value is an error. */
function sidecarPort(): u16 {
  if (!process.env.has("DAPR_HTTP_PORT")) return DEFAULT_HTTP_PORT;
  const text = process.env.get("DAPR_HTTP_PORT");
  let port: i32 = 0;
  let valid = text.length > 0 && text.length <= 5;
  for (let i = 0; valid && i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x30 || c > 0x39) valid = false;
    else port = port * 10 + (c - 0x30);
  }
  if (!valid || port < 1 || port > 65535) {
    fail("DAPR_HTTP_PORT is `" + text + "`, not a port number (1-65535)");
  }
  return <u16>port;
}

/** Reads `key`, failing unless it holds exactly `expected`. */
function expectValue(client: StateClient, key: string, expected: string): void {
  const got = client.getState(STORE, key);
  check(got.error);
  const value = got.value;
  if (value === null) {
    fail("getState(" + STORE + ", " + key + "): no such key, expected " + expected);
    return;
  }
  if (value != expected) {
    fail("getState(" + STORE + ", " + key + ") returned " + value + ", expected " + expected);
  }
  console.log("got " + key + " = " + value);
}

const token = process.env.has("DAPR_API_TOKEN") ? process.env.get("DAPR_API_TOKEN") : null;
const client = new StateClient(sidecarPort(), token);

check(client.saveState(STORE, "weapon", WEAPON));
console.log("saved weapon = " + WEAPON);

const planets = new Array<StateItem>();
planets.push(new StateItem("planets", PLANETS));
check(client.saveBulkState(STORE, planets));
console.log("bulk-saved planets = " + PLANETS);

expectValue(client, "weapon", WEAPON);
expectValue(client, "planets", PLANETS);

check(client.saveState(STORE, SCRATCH_KEY, "\"to be deleted\""));
expectValue(client, SCRATCH_KEY, "\"to be deleted\"");
check(client.deleteState(STORE, SCRATCH_KEY));
const gone = client.getState(STORE, SCRATCH_KEY);
check(gone.error);
if (gone.value !== null) {
  fail("getState(" + STORE + ", " + SCRATCH_KEY + ") still returns " + gone.value! + " after deleteState");
}
console.log("deleted " + SCRATCH_KEY + ", and it is gone");

console.log("Test successfully!");
