// The official Dapr JavaScript SDK (@dapr/dapr, HTTP) publishing through
// `wasmdapr sidecar`. Driven by crates/wasmdapr/tests/sdk.rs, which sets
// DAPR_HTTP_PORT, PUBSUB and TOPIC, and afterwards reads what reached the
// broker through the broker itself: these tests publish exactly the events
// that check expects.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { DaprClient, CommunicationProtocolEnum } from "@dapr/dapr";

const PUBSUB = process.env.PUBSUB ?? "pubsub";
const TOPIC = process.env.TOPIC;
const client = new DaprClient({
  daprHost: "127.0.0.1",
  daprPort: process.env.DAPR_HTTP_PORT,
  communicationProtocol: CommunicationProtocolEnum.HTTP,
});

after(async () => {
  await client.stop();
});

test("publish sends an object, a string and a CloudEvent; publishBulk fails no message", async () => {
  assert.deepEqual(await client.pubsub.publish(PUBSUB, TOPIC, { orderId: 7 }), {});
  assert.deepEqual(await client.pubsub.publish(PUBSUB, TOPIC, "hello"), {});
  const cloudEvent = { specversion: "1.0", id: "js-ce-1", source: "js-test", type: "js.type", data: { ce: true } };
  assert.deepEqual(await client.pubsub.publish(PUBSUB, TOPIC, cloudEvent), {});
  const bulk = await client.pubsub.publishBulk(PUBSUB, TOPIC, ["bulk-a", "bulk-b", { n: 3 }]);
  assert.deepEqual(bulk.failedMessages, []);
});

test("an unknown pub/sub is an error, for publish and for publishBulk", async () => {
  const single = await client.pubsub.publish("no-such-pubsub", TOPIC, { x: 1 });
  assert.ok(single.error, JSON.stringify(single));
  const bulk = await client.pubsub.publishBulk("no-such-pubsub", TOPIC, ["x"]);
  assert.equal(bulk.failedMessages.length, 1, JSON.stringify(bulk));
});
