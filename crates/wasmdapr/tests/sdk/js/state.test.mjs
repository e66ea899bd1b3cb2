// The official Dapr JavaScript SDK (@dapr/dapr, HTTP) against a running
// `wasmdapr sidecar`. Driven by crates/wasmdapr/tests/sdk.rs, which starts the
// sidecar and sets DAPR_HTTP_PORT and STORE. Each test's name says what it proves.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { DaprClient, CommunicationProtocolEnum } from "@dapr/dapr";

const STORE = process.env.STORE ?? "statestore";
const client = new DaprClient({
  daprHost: "127.0.0.1",
  daprPort: process.env.DAPR_HTTP_PORT,
  communicationProtocol: CommunicationProtocolEnum.HTTP,
});
const unique = (name) => `${name}-${randomUUID().slice(0, 8)}`;

after(async () => {
  await client.stop();
});

test("a saved string and a saved object read back as saved", async () => {
  const weapon = unique("weapon");
  const planets = unique("planets");
  const saved = await client.state.save(STORE, [
    { key: weapon, value: "Death Star" },
    { key: planets, value: { name: "Tatooine", test: 123 } },
  ]);
  assert.equal(saved.error, undefined);
  assert.equal(await client.state.get(STORE, weapon), "Death Star");
  assert.deepEqual(await client.state.get(STORE, planets), { name: "Tatooine", test: 123 });
});

test("a missing key reads as empty", async () => {
  const value = await client.state.get(STORE, unique("missing"));
  assert.ok(value === "" || value === undefined || value === null, `got ${JSON.stringify(value)}`);
});

test("getBulk returns every key with its data and etag", async () => {
  const a = unique("a");
  const b = unique("b");
  await client.state.save(STORE, [{ key: a, value: { n: 1 } }, { key: b, value: "two" }]);
  const items = await client.state.getBulk(STORE, [a, b]);
  const byKey = Object.fromEntries(items.map((i) => [i.key, i]));
  assert.deepEqual(byKey[a].data, { n: 1 });
  assert.equal(byKey[b].data, "two");
  assert.ok(byKey[a].etag);
});

test("a stale etag is refused and the newer value kept", async () => {
  const key = unique("counter");
  await client.state.save(STORE, [{ key, value: 1 }]);
  const [{ etag }] = await client.state.getBulk(STORE, [key]);
  // The SDK reports a failed save as `{ error }` rather than throwing.
  assert.equal((await client.state.save(STORE, [{ key, value: 2, etag }])).error, undefined);
  const stale = await client.state.save(STORE, [{ key, value: 3, etag }]);
  assert.ok(stale.error, "a stale etag must be refused");
  assert.match(String(stale.error), /409/);
  assert.match(String(stale.error), /ERR_STATE_SAVE/);
  assert.equal(await client.state.get(STORE, key), 2);
});

test("a transaction upserts and deletes together", async () => {
  const keep = unique("keep");
  const drop = unique("drop");
  await client.state.save(STORE, [{ key: drop, value: "bye" }]);
  await client.state.transaction(STORE, [
    { operation: "upsert", request: { key: keep, value: "hello" } },
    { operation: "delete", request: { key: drop } },
  ]);
  assert.equal(await client.state.get(STORE, keep), "hello");
  const gone = await client.state.get(STORE, drop);
  assert.ok(gone === "" || gone === undefined || gone === null);
});

test("delete removes a key", async () => {
  const key = unique("del");
  await client.state.save(STORE, [{ key, value: "x" }]);
  await client.state.delete(STORE, key);
  const gone = await client.state.get(STORE, key);
  assert.ok(gone === "" || gone === undefined || gone === null);
});

test("query filters and sorts JSON values", async () => {
  const team = unique("team");
  for (const [i, city] of ["Seattle", "Portland", "Spokane"].entries()) {
    await client.state.save(STORE, [{ key: unique("emp"), value: { team, city, n: i } }]);
  }
  const res = await client.state.query(STORE, {
    filter: { EQ: { team } },
    sort: [{ key: "n", order: "DESC" }],
  });
  assert.deepEqual(res.results.map((r) => r.data.city), ["Spokane", "Portland", "Seattle"]);
});

test("the sidecar's metadata names the app and the store", async () => {
  const metadata = await client.metadata.get();
  assert.ok(metadata.id);
  assert.ok(metadata.components.some((c) => c.name === STORE), JSON.stringify(metadata));
});
