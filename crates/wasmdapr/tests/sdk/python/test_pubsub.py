"""The official Dapr Python SDK (gRPC) publishing through `wasmdapr sidecar`.

Driven by crates/wasmdapr/tests/sdk.rs, which starts the sidecar, sets
DAPR_GRPC_PORT, PUBSUB (the pub/sub component) and TOPIC (a fresh topic),
and afterwards reads what reached the broker through the broker itself:
this suite publishes exactly the events that check expects.
"""
import json
import os
import unittest

import grpc
from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprGrpcError
from dapr.clients.grpc._request import BulkPublishEntry

PUBSUB = os.environ.get("PUBSUB", "pubsub")
TOPIC = os.environ["TOPIC"]
ADDRESS = f"127.0.0.1:{os.environ['DAPR_GRPC_PORT']}"


class PublishTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.client = DaprClient(address=ADDRESS)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()

    def test_publish_event_and_bulk(self):
        """publish_event (JSON with a cloudevent.type override, text with a
        TTL, a raw payload) and publish_events (three texts, two JSON entries
        with their own metadata) all succeed; no bulk entry fails."""
        self.client.publish_event(
            PUBSUB,
            TOPIC,
            data='{"orderId": 1, "big": 12345678901234567890}',
            data_content_type="application/json",
            publish_metadata={"cloudevent.type": "order.created"},
        )
        self.client.publish_event(
            PUBSUB, TOPIC, data="plain", data_content_type="text/plain",
            publish_metadata={"ttlInSeconds": "60"},
        )
        self.client.publish_event(PUBSUB, TOPIC, data=b"\x00raw", publish_metadata={"rawPayload": "true"})
        response = self.client.publish_events(
            PUBSUB, TOPIC, data=["bulk-1", "bulk-2", "bulk-3"], data_content_type="text/plain"
        )
        self.assertEqual(response.failed_entries, [])
        response = self.client.publish_events(
            PUBSUB,
            TOPIC,
            data=[
                BulkPublishEntry(event=json.dumps({"n": 1}), metadata={"k": "one"}),
                BulkPublishEntry(event=json.dumps({"n": 2}), metadata={"k": "two"}),
            ],
            data_content_type="application/json",
        )
        self.assertEqual(response.failed_entries, [])

    def test_unknown_pubsub(self):
        """An unknown pub/sub is INVALID_ARGUMENT DAPR_PUBSUB_NOT_FOUND with
        daprd's wording; an empty topic DAPR_PUBSUB_TOPIC_NAME_EMPTY."""
        with self.assertRaises(DaprGrpcError) as raised:
            self.client.publish_event("no-such-pubsub", TOPIC, data="x")
        error = raised.exception
        self.assertEqual(error.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(error.error_code(), "DAPR_PUBSUB_NOT_FOUND")
        self.assertTrue(error.details().endswith("pubsub no-such-pubsub is not found"), error.details())
        with self.assertRaises(DaprGrpcError) as raised:
            self.client.publish_event(PUBSUB, "", data="x")
        self.assertEqual(raised.exception.error_code(), "DAPR_PUBSUB_TOPIC_NAME_EMPTY")
        with self.assertRaises(DaprGrpcError) as raised:
            self.client.publish_events("no-such-pubsub", TOPIC, data=["x"])
        self.assertEqual(raised.exception.error_code(), "DAPR_PUBSUB_NOT_FOUND")


if __name__ == "__main__":
    unittest.main()
