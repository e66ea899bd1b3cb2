// A Dapr app written with the official JavaScript SDK's `DaprServer` (HTTP),
// subscribing with `pubsub.subscribeBulk` (at most 5 entries a batch, at most
// 200 ms of waiting), behind `wasmdapr sidecar --app-port APP_PORT`. The
// SDK's bulk handler reads the `entries` of Dapr's BulkSubscribeMessage and
// answers `{"statuses": [...]}` per entry; the callback answers RETRY the
// first time it sees an event whose `kind` is `retry`, SUCCESS otherwise,
// and appends each event's data as one JSON line to the file OUT. Driven by
// crates/wasmdapr/tests/sdk.rs (APP_PORT, DAPR_HTTP_PORT, PUBSUB, TOPIC, OUT).
import { appendFileSync } from "node:fs";
import { CommunicationProtocolEnum, DaprPubSubStatusEnum, DaprServer } from "@dapr/dapr";

const server = new DaprServer({
  serverHost: "127.0.0.1",
  serverPort: process.env.APP_PORT,
  communicationProtocol: CommunicationProtocolEnum.HTTP,
  clientOptions: { daprHost: "127.0.0.1", daprPort: process.env.DAPR_HTTP_PORT },
});
const seen = new Set();

await server.pubsub.subscribeBulk(
  process.env.PUBSUB,
  process.env.TOPIC,
  async (data) => {
    const first = !seen.has(data.n);
    seen.add(data.n);
    appendFileSync(process.env.OUT, JSON.stringify({ data, first }) + "\n");
    return data.kind === "retry" && first ? DaprPubSubStatusEnum.RETRY : DaprPubSubStatusEnum.SUCCESS;
  },
  { route: "orders-bulk", maxMessagesCount: 5, maxAwaitDurationMs: 200 },
);
await server.start();
