"""A Dapr subscriber app as Dapr's quickstarts write one, with nothing but
the standard library: `GET /dapr/subscribe` lists one subscription, and
each CloudEvent POSTed to its route is appended (with the request's
Content-Type) as one JSON line to the file OUT, then acked with
{"status": "SUCCESS"}.

Driven by crates/wasmdapr/tests/sdk.rs: APP_PORT, PUBSUB, TOPIC and OUT
come from the environment.
"""
import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

PUBSUB = os.environ.get("PUBSUB", "pubsub")
TOPIC = os.environ["TOPIC"]
OUT = os.environ["OUT"]


class App(BaseHTTPRequestHandler):
    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/dapr/subscribe":
            self.reply(200, [{"pubsubname": PUBSUB, "topic": TOPIC, "route": "orders"}])
        else:
            self.reply(404, {})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        event = json.loads(self.rfile.read(length))
        if self.path != "/orders":
            self.reply(404, {})
            return
        with open(OUT, "a") as out:
            out.write(json.dumps({"content_type": self.headers.get("Content-Type"), "event": event}) + "\n")
        self.reply(200, {"status": "SUCCESS"})

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(os.environ["APP_PORT"])), App).serve_forever()
