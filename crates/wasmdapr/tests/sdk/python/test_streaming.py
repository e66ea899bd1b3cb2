"""Streaming subscriptions (`SubscribeTopicEventsAlpha1`) of `wasmdapr sidecar`,
judged by the official Dapr Python SDK: `DaprClient.subscribe` with
`next_message` / `respond_success|retry|drop`, and `subscribe_with_handler`.

Driven by crates/wasmdapr/tests/sdk.rs, which starts the sidecar on the
embedded default (the durable SQLite pub/sub `pubsub`, which redelivers an
unacked event after 1 s) and sets DAPR_GRPC_PORT and TOPIC (a fresh prefix:
each test uses topics of its own under it).
"""
import os
import queue
import threading
import time
import unittest

from dapr.clients import DaprClient
from dapr.clients.grpc._response import TopicEventResponse

PUBSUB = os.environ.get("PUBSUB", "pubsub")
PREFIX = os.environ["TOPIC"]
ADDRESS = f"127.0.0.1:{os.environ['DAPR_GRPC_PORT']}"
WAIT = 20


def next_within(subscription, seconds=WAIT):
    """The next message, or a failure if none comes within `seconds`
    (`next_message` itself waits forever)."""
    out = queue.Queue()

    def read():
        try:
            out.put(("ok", subscription.next_message()))
        except Exception as e:  # noqa: BLE001 - reported to the test
            out.put(("error", e))

    threading.Thread(target=read, daemon=True).start()
    try:
        kind, value = out.get(timeout=seconds)
    except queue.Empty:
        raise AssertionError(f"no message within {seconds}s") from None
    if kind == "error":
        raise value
    return value


class StreamingSubscriptionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.client = DaprClient(address=ADDRESS)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()

    def publish(self, topic, n):
        self.client.publish_event(
            PUBSUB, topic, data=f'{{"n": {n}}}', data_content_type="application/json"
        )

    def test_success_is_acked_once(self):
        """An event answered SUCCESS arrives as daprd sends it (first the
        initial response, which the SDK discards; then the TopicEventRequest
        filled from the CloudEvent) and is never delivered again, not even
        to a later subscription of the same app."""
        topic = f"{PREFIX}-success"
        sub = self.client.subscribe(PUBSUB, topic)
        try:
            self.publish(topic, 1)
            msg = next_within(sub)
            self.assertEqual(msg.data(), {"n": 1})
            self.assertEqual(msg.topic(), topic)
            self.assertEqual(msg.pubsub_name(), PUBSUB)
            self.assertEqual(msg.source(), "tests")
            self.assertEqual(msg.type(), "com.dapr.event.sent")
            self.assertEqual(msg.spec_version(), "1.0")
            self.assertEqual(msg.data_content_type(), "application/json")
            self.assertEqual(len(msg.id()), 36)
            ext = msg.extensions()
            self.assertEqual(ext.get("topic"), topic)
            self.assertEqual(ext.get("pubsubname"), PUBSUB)
            self.assertIn("traceparent", ext)
            self.assertNotIn("id", ext)
            self.assertNotIn("data", ext)
            sub.respond_success(msg)
            self.publish(topic, 2)
            self.assertEqual(next_within(sub).data(), {"n": 2}, "event 1 came again")
        finally:
            sub.close()
        # Event 2 was not answered before the close: a new subscription of
        # the app gets it again; event 1 (answered SUCCESS) never.
        sub = self.client.subscribe(PUBSUB, topic)
        try:
            again = next_within(sub)
            self.assertEqual(again.data(), {"n": 2})
            sub.respond_success(again)
            self.publish(topic, 3)
            self.assertEqual(next_within(sub).data(), {"n": 3})
        finally:
            sub.close()

    def test_retry_is_redelivered(self):
        """An event answered RETRY comes again (same id, same data) until it
        is answered SUCCESS; then the next event follows."""
        topic = f"{PREFIX}-retry"
        sub = self.client.subscribe(PUBSUB, topic)
        try:
            self.publish(topic, 1)
            first = next_within(sub)
            self.assertEqual(first.data(), {"n": 1})
            sub.respond_retry(first)
            second = next_within(sub)
            self.assertEqual(second.id(), first.id())
            self.assertEqual(second.data(), {"n": 1})
            sub.respond_success(second)
            self.publish(topic, 2)
            self.assertEqual(next_within(sub).data(), {"n": 2})
        finally:
            sub.close()

    def test_drop_goes_to_the_dead_letter_topic(self):
        """An event answered DROP is not delivered again; it is published to
        the subscription's dead-letter topic, where another subscription
        gets the same event (same id and data)."""
        topic, dlq = f"{PREFIX}-drop", f"{PREFIX}-drop-dlq"
        sub = self.client.subscribe(PUBSUB, topic, dead_letter_topic=dlq)
        dead = self.client.subscribe(PUBSUB, dlq)
        try:
            self.publish(topic, 1)
            msg = next_within(sub)
            sub.respond_drop(msg)
            lost = next_within(dead)
            self.assertEqual(lost.id(), msg.id())
            self.assertEqual(lost.data(), {"n": 1})
            self.assertEqual(lost.topic(), dlq)
            dead.respond_success(lost)
            self.publish(topic, 2)
            self.assertEqual(next_within(sub).data(), {"n": 2}, "the dropped event came again")
        finally:
            sub.close()
            dead.close()

    def test_subscribe_with_handler(self):
        """`subscribe_with_handler`: the handler's TopicEventResponse
        answers each event: 'retry' delivers it again, 'success' and 'drop'
        (without a dead-letter topic) end it."""
        topic = f"{PREFIX}-handler"
        seen = []
        done = threading.Event()

        def handler(msg):
            n = msg.data()["n"]
            seen.append(n)
            if sorted(seen) == [1, 1, 2, 3]:
                done.set()
            if n == 1 and seen.count(1) == 1:
                return TopicEventResponse("retry")
            if n == 2:
                return TopicEventResponse("drop")
            return TopicEventResponse("success")

        close = self.client.subscribe_with_handler(PUBSUB, topic, handler)
        try:
            for n in (1, 2, 3):
                self.publish(topic, n)
            self.assertTrue(done.wait(WAIT), f"seen: {seen}")
            # Give a wrongly redelivered event time to show up.
            time.sleep(1.5)
        finally:
            close()
        # The retried event comes again later (the broker's redelivery),
        # the others once each.
        self.assertEqual(sorted(seen), [1, 1, 2, 3])

    def test_errors(self):
        """An unknown pub/sub is Dapr's ERR_PUBSUB_NOT_FOUND; a missing
        topic is daprd's `topic is required`."""
        with self.assertRaises(Exception) as refused:
            self.client.subscribe("no-such-pubsub", f"{PREFIX}-x")
        self.assertIn("no-such-pubsub is not found", str(refused.exception))
        self.assertIn("INVALID_ARGUMENT", str(refused.exception))
        with self.assertRaises(Exception) as refused:
            self.client.subscribe(PUBSUB, "")
        self.assertIn("topic is required", str(refused.exception))


if __name__ == "__main__":
    unittest.main()
