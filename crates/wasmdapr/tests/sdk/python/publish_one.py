"""Publishes one JSON event with the official Dapr Python SDK's
`publish_event` (gRPC) to PUBSUB/TOPIC; driven by crates/wasmdapr/tests/sdk.rs."""
import json
import os

from dapr.clients import DaprClient

with DaprClient(address=f"127.0.0.1:{os.environ['DAPR_GRPC_PORT']}") as client:
    client.publish_event(
        os.environ.get("PUBSUB", "pubsub"),
        os.environ["TOPIC"],
        data=json.dumps({"orderId": 42, "item": "tea"}),
        data_content_type="application/json",
    )
