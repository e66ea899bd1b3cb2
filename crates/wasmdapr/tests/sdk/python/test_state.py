"""The official Dapr Python SDK (gRPC) against a running `wasmdapr sidecar`.

Driven by crates/wasmdapr/tests/sdk.rs, which starts the sidecar and sets
DAPR_GRPC_PORT / DAPR_HTTP_PORT and STORE (the state store's name). Each
test's docstring says what it proves.
"""
import json
import os
import unittest
import uuid

import grpc
from dapr.clients import DaprClient
from dapr.clients.grpc._state import Concurrency, StateItem, StateOptions
from dapr.clients.grpc._request import TransactionalStateOperation, TransactionOperationType

STORE = os.environ.get("STORE", "statestore")
ADDRESS = f"127.0.0.1:{os.environ['DAPR_GRPC_PORT']}"


def unique(name):
    return f"{name}-{uuid.uuid4().hex[:8]}"


def grpc_code(error):
    """The gRPC status code of an SDK error (DaprGrpcError or RpcError)."""
    code = getattr(error, "code", None)
    return code() if callable(code) else code


class StateTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.client = DaprClient(address=ADDRESS)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()

    def test_save_and_get_round_trip(self):
        """A value saved through the SDK reads back byte-exactly with an etag."""
        key = unique("weapon")
        self.client.save_state(STORE, key, "Death Star")
        got = self.client.get_state(STORE, key)
        self.assertEqual(got.data, b"Death Star")
        self.assertTrue(got.etag)

    def test_missing_key_is_empty(self):
        """A key never written reads as empty data, not an error."""
        got = self.client.get_state(STORE, unique("missing"))
        self.assertEqual(got.data, b"")

    def test_bulk_save_and_get(self):
        """save_bulk_state stores every item; get_bulk_state returns each key."""
        a, b = unique("planet"), unique("planet")
        planets = json.dumps({"name": "Tatooine", "test": 123})
        self.client.save_bulk_state(STORE, [StateItem(key=a, value=planets), StateItem(key=b, value="Hoth")])
        items = {i.key: i for i in self.client.get_bulk_state(STORE, [a, b, unique("none")], parallelism=2).items}
        self.assertEqual(json.loads(items[a].data), {"name": "Tatooine", "test": 123})
        self.assertEqual(items[b].data, b"Hoth")
        self.assertEqual(len(items), 3)

    def test_etag_conflict(self):
        """A write with a stale etag fails with ABORTED and keeps the newer value."""
        key = unique("counter")
        self.client.save_state(STORE, key, "1")
        stale = self.client.get_state(STORE, key).etag
        self.client.save_state(STORE, key, "2", etag=stale)
        with self.assertRaises(Exception) as raised:
            self.client.save_state(STORE, key, "3", etag=stale)
        self.assertEqual(grpc_code(raised.exception), grpc.StatusCode.ABORTED)
        self.assertEqual(self.client.get_state(STORE, key).data, b"2")

    def test_first_write_wins(self):
        """first-write without an etag refuses to overwrite an existing key."""
        key = unique("first")
        options = StateOptions(concurrency=Concurrency.first_write)
        self.client.save_state(STORE, key, "a", options=options)
        with self.assertRaises(Exception) as raised:
            self.client.save_state(STORE, key, "b", options=options)
        self.assertEqual(grpc_code(raised.exception), grpc.StatusCode.ABORTED)

    def test_transaction(self):
        """A transaction upserts and deletes together."""
        keep, drop = unique("keep"), unique("drop")
        self.client.save_state(STORE, drop, "bye")
        self.client.execute_state_transaction(STORE, [
            TransactionalStateOperation(key=keep, data="hello", operation_type=TransactionOperationType.upsert),
            TransactionalStateOperation(key=drop, operation_type=TransactionOperationType.delete),
        ])
        self.assertEqual(self.client.get_state(STORE, keep).data, b"hello")
        self.assertEqual(self.client.get_state(STORE, drop).data, b"")

    def test_delete_with_etag(self):
        """delete_state honours etags: stale fails, current succeeds."""
        key = unique("del")
        self.client.save_state(STORE, key, "x")
        etag = self.client.get_state(STORE, key).etag
        self.client.save_state(STORE, key, "y")
        with self.assertRaises(Exception):
            self.client.delete_state(STORE, key, etag=etag)
        self.client.delete_state(STORE, key, etag=self.client.get_state(STORE, key).etag)
        self.assertEqual(self.client.get_state(STORE, key).data, b"")

    def test_query(self):
        """query_state filters JSON values and sorts them."""
        tag = unique("team")
        for i, city in enumerate(["Seattle", "Portland", "Spokane"]):
            value = json.dumps({"team": tag, "city": city, "n": i})
            self.client.save_state(STORE, unique("emp"), value)
        query = json.dumps({"filter": {"EQ": {"team": tag}}, "sort": [{"key": "n", "order": "DESC"}]})
        resp = self.client.query_state(STORE, query)
        cities = [json.loads(r.value)["city"] for r in resp.results]
        self.assertEqual(cities, ["Spokane", "Portland", "Seattle"])

    def test_unknown_store(self):
        """An unknown store is INVALID_ARGUMENT naming the store."""
        with self.assertRaises(Exception) as raised:
            self.client.get_state("no-such-store", "k")
        self.assertEqual(grpc_code(raised.exception), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("no-such-store", str(raised.exception))


if __name__ == "__main__":
    unittest.main(verbosity=2)
