"""Calls the gRPC app of grpc_app.py through the sidecar with the Python SDK's
`DaprClient`, as the SDK's `invoke-simple` and `pubsub-simple` callers do:
`invoke_method` of `my-method` (over the HTTP API, the SDK's default, and
over gRPC with DAPR_API_METHOD_INVOCATION_PROTOCOL=grpc, set by the caller),
then `publish_event` of one event to each of the app's topics and two, with
metadata `origin: client`, to the bulk subscription's topic. Prints the
invocation's answer as one JSON line.
"""
import json
import os

from dapr.clients import DaprClient

APP_ID = os.environ.get("APP_ID", "tests")
PUBSUB = os.environ.get("PUBSUB", "pubsub")
TOPIC = os.environ["TOPIC"]

with DaprClient() as d:
    resp = d.invoke_method(
        APP_ID,
        "my-method",
        data=json.dumps({"id": 1, "message": "hello world"}),
        content_type="application/json",
    )
    print(json.dumps({"text": resp.text(), "content_type": resp.content_type}), flush=True)
    if os.environ.get("PUBLISH") == "1":
        for suffix in ["", "-retry", "-drop"]:
            d.publish_event(
                pubsub_name=PUBSUB,
                topic_name=TOPIC + suffix,
                data=json.dumps({"id": suffix or "plain", "message": "hello world"}),
                data_content_type="application/json",
            )
        for n in [1, 2]:
            d.publish_event(
                pubsub_name=PUBSUB,
                topic_name=TOPIC + "-bulk",
                data=json.dumps({"id": f"bulk-{n}"}),
                data_content_type="application/json",
                publish_metadata={"origin": "client"},
            )
