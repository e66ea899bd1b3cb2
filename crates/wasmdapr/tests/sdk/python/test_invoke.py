"""The official Dapr Python SDK's `invoke_method` against a `wasmdapr sidecar`.

Driven by crates/wasmdapr/tests/invoke.rs, which starts the sidecar with an
HTTP app on `--app-port` (it answers `billed: <body>` and records what it
got) and sets DAPR_HTTP_PORT / DAPR_GRPC_PORT, TARGET (the app id) and
DAPR_API_METHOD_INVOCATION_PROTOCOL (`http` or `grpc`, read by the SDK at
import), so the suite runs over both of the SDK's invocation clients.
"""
import os
import unittest

from dapr.clients import DaprClient

TARGET = os.environ["TARGET"]
ADDRESS = f"127.0.0.1:{os.environ['DAPR_GRPC_PORT']}"


class InvokeTest(unittest.TestCase):
    def test_invoke_method_reaches_the_app(self):
        """The verb, query, body and content type reach the app; its answer comes back."""
        with DaprClient(ADDRESS) as d:
            response = d.invoke_method(
                TARGET,
                "charge",
                data=b"card",
                content_type="text/plain",
                http_verb="PUT",
                http_querystring=(("amount", "5"),),
            )
            self.assertEqual(response.text(), "billed: card")

    def test_unknown_app_is_err_direct_invoke(self):
        """An unknown app id fails with Dapr's ERR_DIRECT_INVOKE naming it."""
        with DaprClient(ADDRESS) as d:
            with self.assertRaises(Exception) as caught:
                d.invoke_method("nobody-here", "x", data=b"", http_verb="POST")
            text = repr(caught.exception) + str(caught.exception)
            self.assertIn("ERR_DIRECT_INVOKE", text)
            self.assertIn("nobody-here", text)


if __name__ == "__main__":
    unittest.main()
