"""Dapr's rich errors as the official Python SDK reads them, from a running
`wasmdapr sidecar`.

Driven by crates/wasmdapr/tests/sdk.rs (DAPR_GRPC_PORT, DAPR_HTTP_PORT,
STORE). Over gRPC the SDK raises `DaprGrpcError`, whose `status_details()`
decodes `google.rpc.ErrorInfo`, `ResourceInfo` and `BadRequest` from the
status; over HTTP its `DaprHttpClient` raises `DaprHttpError` with daprd's
JSON body (`errorCode`, `message`, `details`). Each test's docstring says
what it proves.
"""
import asyncio
import json
import os
import unittest

import grpc
from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprGrpcError, DaprHttpError
from dapr.clients.http.client import DaprHttpClient
from dapr.serializers import DefaultJSONSerializer

STORE = os.environ.get("STORE", "statestore")
ADDRESS = f"127.0.0.1:{os.environ['DAPR_GRPC_PORT']}"
HTTP = f"http://127.0.0.1:{os.environ['DAPR_HTTP_PORT']}"

# daprd's wording (`pkg/components/state/state_config.go`).
ILLEGAL = "input key/keyPrefix 'k||' can't contain '||'"


class GrpcErrorsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.client = DaprClient(address=ADDRESS)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()

    def test_illegal_key(self):
        """An illegal key is INVALID_ARGUMENT with daprd's ErrorInfo reason,
        the store as ResourceInfo and the key as a BadRequest violation."""
        with self.assertRaises(DaprGrpcError) as raised:
            self.client.get_state(STORE, "k||")
        error = raised.exception
        self.assertEqual(error.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(error.error_code(), "DAPR_STATE_ILLEGAL_KEY")
        self.assertTrue(error.details().endswith(ILLEGAL), error.details())
        details = error.status_details()
        rpc = "type.googleapis.com/google.rpc."
        self.assertEqual(
            details.error_info,
            {"@type": rpc + "ErrorInfo", "reason": "DAPR_STATE_ILLEGAL_KEY", "domain": "dapr.io"},
        )
        # Empty proto fields (owner, description) are left out by MessageToDict.
        self.assertEqual(
            details.resource_info,
            {"@type": rpc + "ResourceInfo", "resource_type": "state", "resource_name": STORE},
        )
        self.assertEqual(
            details.bad_request,
            {"@type": rpc + "BadRequest", "field_violations": [{"field": "k||", "description": ILLEGAL}]},
        )

    def test_unknown_store(self):
        """An unknown store is DAPR_STATE_NOT_FOUND naming the app in the
        ErrorInfo metadata, without ResourceInfo (as daprd)."""
        with self.assertRaises(DaprGrpcError) as raised:
            self.client.save_state("no-such-store", "k", "v")
        error = raised.exception
        self.assertEqual(error.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(error.error_code(), "DAPR_STATE_NOT_FOUND")
        info = error.status_details().error_info
        self.assertEqual(info["domain"], "dapr.io")
        self.assertTrue(info["metadata"]["appID"])
        self.assertIsNone(error.status_details().resource_info)
        self.assertIsNone(error.status_details().bad_request)
        self.assertTrue(error.details().endswith("state store no-such-store is not found"), error.details())


class HttpErrorsTest(unittest.TestCase):
    def send(self, method, path, body=None):
        """Sends through the SDK's own HTTP client; returns its DaprHttpError."""
        client = DaprHttpClient(DefaultJSONSerializer())
        data = None if body is None else json.dumps(body).encode()

        async def call():
            await client.send_bytes(method, f"{HTTP}{path}", data)

        with self.assertRaises(DaprHttpError) as raised:
            asyncio.run(call())
        return raised.exception

    def test_illegal_key(self):
        """Over HTTP the SDK reads daprd's errorCode and message, and the body
        carries the same three details with their @type."""
        error = self.send("POST", f"/v1.0/state/{STORE}", [{"key": "k||", "value": 1}])
        self.assertEqual(error.status_code, 400)
        self.assertEqual(error.error_code, "ERR_MALFORMED_REQUEST")
        self.assertEqual(error.message, ILLEGAL)
        details = json.loads(error.raw_response_bytes)["details"]
        by_type = {d["@type"].rsplit(".", 1)[-1]: d for d in details}
        self.assertEqual(list(by_type), ["BadRequest", "ResourceInfo", "ErrorInfo"])
        self.assertEqual(by_type["ErrorInfo"]["reason"], "DAPR_STATE_ILLEGAL_KEY")
        self.assertEqual(by_type["ErrorInfo"]["domain"], "dapr.io")
        self.assertEqual(by_type["ResourceInfo"]["resource_name"], STORE)
        self.assertEqual(by_type["ResourceInfo"]["resource_type"], "state")
        self.assertEqual(by_type["BadRequest"]["field_violations"], [{"field": "k||", "description": ILLEGAL}])

    def test_unknown_store(self):
        """An unknown store over HTTP: 400 ERR_STATE_STORE_NOT_FOUND, daprd's
        wording, ErrorInfo naming the app."""
        error = self.send("GET", "/v1.0/state/no-such-store/k")
        self.assertEqual(error.status_code, 400)
        self.assertEqual(error.error_code, "ERR_STATE_STORE_NOT_FOUND")
        self.assertEqual(error.message, "state store no-such-store is not found")
        (info,) = json.loads(error.raw_response_bytes)["details"]
        self.assertEqual(info["reason"], "DAPR_STATE_NOT_FOUND")
        self.assertTrue(info["metadata"]["appID"])

    def test_plain_errors_stay_plain(self):
        """An error daprd sends without details (a stale ETag) has none here
        either: the SDK sees only errorCode and message."""
        client_key = "errors-plain-etag"
        error = self.send("POST", f"/v1.0/state/{STORE}", [{"key": client_key, "value": 1, "etag": "999999"}])
        self.assertIn(error.status_code, (400, 409))
        self.assertEqual(error.error_code, "ERR_STATE_SAVE")
        self.assertNotIn("details", json.loads(error.raw_response_bytes))


if __name__ == "__main__":
    unittest.main()
