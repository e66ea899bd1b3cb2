"""A Dapr gRPC app written with the Python SDK's `dapr-ext-grpc` `App`, in the
shape of the SDK's own `invoke-simple` and `pubsub-simple` examples, served
behind `wasmdapr sidecar --app-protocol grpc --app-port APP_PORT`.

- `@app.method(name='my-method')` answers an `InvokeMethodResponse` that
  echoes the request;
- `TOPIC` handlers: `<TOPIC>` takes every event (SUCCESS); `<TOPIC>-retry`
  answers RETRY the first time it sees an event id, then SUCCESS;
  `<TOPIC>-drop` answers DROP, its subscription naming the dead-letter topic
  `<TOPIC>-dead`, whose handler takes what arrives there;
  `<TOPIC>-bulk-handler` is the route of a declarative bulk subscription
  to `<TOPIC>-bulk` (the test's resources), delivered with
  `OnBulkTopicEvent`: RETRY the first time it sees an event id, then
  SUCCESS.

Every call and event is appended as one JSON line to the file OUT, for
crates/wasmdapr/tests/sdk.rs to check.
"""
import json
import os
import threading

from cloudevents.sdk.event import v1
from dapr.clients.grpc._response import TopicEventResponse
from dapr.ext.grpc import App, InvokeMethodRequest, InvokeMethodResponse

PUBSUB = os.environ.get("PUBSUB", "pubsub")
TOPIC = os.environ["TOPIC"]
OUT = os.environ["OUT"]

app = App()
lock = threading.Lock()
seen = set()


def record(kind, **fields):
    with lock, open(OUT, "a") as out:
        out.write(json.dumps({"kind": kind, **fields}) + "\n")


def event_fields(event: v1.Event):
    data = event.Data()
    return {
        "id": event.EventID(),
        "type": event.EventType(),
        "source": event.Source(),
        "content_type": event.ContentType(),
        "data": data.decode() if isinstance(data, bytes) else data,
        "extensions": {k: v for k, v in event.Extensions().items() if isinstance(v, str)},
    }


@app.method(name="my-method")
def my_method(request: InvokeMethodRequest) -> InvokeMethodResponse:
    # The call's metadata, each key with its list of values.
    caller = request.metadata.get("dapr-caller-app-id", [None])[0]
    record("invoke", data=request.text(), content_type=request.content_type, caller=caller)
    return InvokeMethodResponse(b"INVOKE_RECEIVED " + request.data, "text/plain; charset=UTF-8")


@app.subscribe(pubsub_name=PUBSUB, topic=TOPIC)
def mytopic(event: v1.Event) -> TopicEventResponse:
    record("success", **event_fields(event))
    return TopicEventResponse("success")


@app.subscribe(pubsub_name=PUBSUB, topic=TOPIC + "-retry")
def mytopic_retry(event: v1.Event) -> TopicEventResponse:
    first = event.EventID() not in seen
    seen.add(event.EventID())
    record("retry", first=first, **event_fields(event))
    return TopicEventResponse("retry" if first else "success")


@app.subscribe(pubsub_name=PUBSUB, topic=TOPIC + "-drop", dead_letter_topic=TOPIC + "-dead")
def mytopic_drop(event: v1.Event) -> TopicEventResponse:
    record("drop", **event_fields(event))
    return TopicEventResponse("drop")


@app.subscribe(pubsub_name=PUBSUB, topic=TOPIC + "-dead")
def mytopic_dead(event: v1.Event) -> None:
    record("dead", **event_fields(event))


@app.subscribe(pubsub_name=PUBSUB, topic=TOPIC + "-bulk-handler")
def mytopic_bulk(event: v1.Event) -> TopicEventResponse:
    first = ("bulk", event.EventID()) not in seen
    seen.add(("bulk", event.EventID()))
    record("bulk", first=first, **event_fields(event))
    return TopicEventResponse("retry" if first else "success")


app.run(int(os.environ["APP_PORT"]))
