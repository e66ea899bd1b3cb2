// The official Dapr JavaScript SDK's `invoker.invoke` (HTTP) against a
// `wasmdapr sidecar`. Driven by crates/wasmdapr/tests/invoke.rs, which
// starts a sidecar whose name resolution finds TARGET (a sidecar with an
// HTTP app on --app-port answering `billed: <body>`), and sets
// DAPR_HTTP_PORT.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CommunicationProtocolEnum, DaprClient, HttpMethod } from "@dapr/dapr";

const client = new DaprClient({
  daprHost: "127.0.0.1",
  daprPort: process.env.DAPR_HTTP_PORT,
  communicationProtocol: CommunicationProtocolEnum.HTTP,
});
const target = process.env.TARGET;

test("invoke reaches the app through its sidecar and returns its answer", async () => {
  const answer = await client.invoker.invoke(target, "charge?amount=5", HttpMethod.PUT, "card", {
    headers: { "content-type": "text/plain" },
  });
  assert.equal(answer, "billed: card");
});

test("an unknown app id is ERR_DIRECT_INVOKE naming it", async () => {
  await assert.rejects(
    client.invoker.invoke("nobody-here", "x", HttpMethod.POST, {}),
    (error) => {
      const text = `${error.message} ${JSON.stringify(error)}`;
      assert.match(text, /ERR_DIRECT_INVOKE/);
      assert.match(text, /nobody-here/);
      return true;
    },
  );
});
