// The official Dapr JavaScript SDK's `DaprServer` (HTTP) as the app behind
// `wasmdapr sidecar --app-port`, subscribing as Dapr's quickstarts do:
// routing rules (CEL) with a default route, a dead-letter topic with its own
// handler, and handlers answering SUCCESS, RETRY and DROP (with a
// dead-letter topic and no resiliency policy, daprd dead-letters an event
// at its first failure, RETRY or DROP; without one, RETRY redelivers). Driven by
// crates/wasmdapr/tests/sdk.rs, which sets DAPR_HTTP_PORT, APP_PORT and TOPIC
// and starts the sidecar, which waits for this app. Route names have no
// inner `/`: the SDK registers such a route under another path than it
// declares (it strips the `/` twice), with daprd as here.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { DaprServer, DaprPubSubStatusEnum, CommunicationProtocolEnum } from "@dapr/dapr";

const PUBSUB = "pubsub";
const TOPIC = process.env.TOPIC;
const DEAD = `${TOPIC}-dead`;
const server = new DaprServer({
  serverHost: "127.0.0.1",
  serverPort: process.env.APP_PORT,
  communicationProtocol: CommunicationProtocolEnum.HTTP,
  clientOptions: { daprHost: "127.0.0.1", daprPort: process.env.DAPR_HTTP_PORT },
});

const received = { priority: [], normal: [], dead: [] };

after(async () => {
  await server.stop();
});

async function until(what, check) {
  const deadline = Date.now() + 20000;
  while (!check()) {
    if (Date.now() > deadline) {
      throw new Error(`${what}: ${JSON.stringify(received)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test("routes, RETRY, DROP to the dead-letter topic", async () => {
  await server.pubsub.subscribeWithOptions(PUBSUB, TOPIC, {
    route: { rules: [{ match: 'event.data.kind == "priority"', path: "/priority" }], default: "/orders" },
    deadLetterTopic: DEAD,
  });
  server.pubsub.subscribeToRoute(PUBSUB, TOPIC, "/priority", async (data) => {
    received.priority.push(data.n);
    return DaprPubSubStatusEnum.SUCCESS;
  });
  server.pubsub.subscribeToRoute(PUBSUB, TOPIC, "/orders", async (data) => {
    received.normal.push(data.n);
    if (data.kind === "poison") return DaprPubSubStatusEnum.DROP;
    if (data.kind === "flaky") return DaprPubSubStatusEnum.RETRY;
    return DaprPubSubStatusEnum.SUCCESS;
  });
  // The dead-letter topic has no dead-letter topic: RETRY redelivers.
  await server.pubsub.subscribe(PUBSUB, DEAD, async (data) => {
    received.dead.push(data.n);
    const first = received.dead.filter((n) => n === data.n).length === 1;
    return data.kind === "flaky" && first ? DaprPubSubStatusEnum.RETRY : DaprPubSubStatusEnum.SUCCESS;
  }, "/dead");
  // Starts the app server, then waits until the sidecar is healthy: it is
  // once it has read this app's subscriptions and started them.
  await server.start();

  const client = server.client;
  for (const [n, kind] of [[1, "priority"], [2, "normal"], [3, "poison"], [4, "flaky"]]) {
    const published = await client.pubsub.publish(PUBSUB, TOPIC, { n, kind });
    assert.deepEqual(published, {}, `publish ${n}`);
  }
  await until("the priority event", () => received.priority.includes(1));
  await until("the normal event", () => received.normal.includes(2));
  await until("the dropped event at the dead-letter topic", () => received.dead.includes(3));
  await until("the retried event twice at the dead-letter topic", () => received.dead.filter((n) => n === 4).length >= 2);
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.deepEqual(received.priority, [1], "routed by the CEL rule, once");
  assert.equal(received.normal.filter((n) => n === 1).length, 0, "the rule's event skips the default");
  assert.equal(received.normal.filter((n) => n === 2).length, 1, "SUCCESS acks once");
  assert.equal(received.normal.filter((n) => n === 3).length, 1, "DROP is not redelivered");
  assert.equal(received.normal.filter((n) => n === 4).length, 1, "RETRY with a dead-letter topic: dead-lettered");
  assert.deepEqual(received.dead.filter((n) => n === 3), [3], "the dropped event, once");
  assert.deepEqual(received.dead.filter((n) => n === 4), [4, 4], "RETRY redelivers, then SUCCESS acks");
  assert.equal(received.dead.length, 3);
});
