//! The publish methods: `PublishEvent`, `BulkPublishEvent` and its
//! deprecated alias `BulkPublishEventAlpha1` (which the Python SDK falls
//! back to on `UNIMPLEMENTED`). Events are bytes, used as given; the
//! caller's `traceparent` / `tracestate` metadata is continued in the
//! envelope. A bulk publish that fails (entries the broker did not take
//! included) fails the call with an empty response, as in daprd.

use dapr::dapr::proto::runtime::v1 as runtime;
use tonic::{Request, Response, Status};
use wasmdapr_runtime::api::{
    BulkEvent, BulkPublishEntry, BulkPublishEvent, PublishEvent, TraceContext,
};

use super::{GrpcApi, status};

impl GrpcApi {
    pub(super) async fn publish_event(
        &self,
        request: Request<runtime::PublishEventRequest>,
    ) -> Result<Response<()>, Status> {
        let trace = TraceContext::from_headers(&request.metadata().clone().into_headers());
        let r = request.into_inner();
        self.api
            .publish_event(PublishEvent {
                pubsub_name: r.pubsub_name,
                topic: r.topic,
                data: r.data,
                content_type: r.data_content_type,
                metadata: r.metadata,
                trace,
            })
            .await
            .map(Response::new)
            .map_err(status)
    }

    pub(super) async fn bulk_publish_event(
        &self,
        request: Request<runtime::BulkPublishRequest>,
    ) -> Result<Response<runtime::BulkPublishResponse>, Status> {
        let trace = TraceContext::from_headers(&request.metadata().clone().into_headers());
        let r = request.into_inner();
        let entries = r
            .entries
            .into_iter()
            .map(|e| BulkPublishEntry {
                entry_id: e.entry_id,
                event: BulkEvent::Bytes(e.event),
                content_type: e.content_type,
                // A proto map cannot tell absent from empty; daprd (Go)
                // sees an absent map as none.
                metadata: (!e.metadata.is_empty()).then_some(e.metadata),
            })
            .collect();
        self.api
            .bulk_publish_event(BulkPublishEvent {
                pubsub_name: r.pubsub_name,
                topic: r.topic,
                entries,
                metadata: r.metadata,
                trace,
                malformed_body: None,
            })
            .await
            .map(|()| Response::new(runtime::BulkPublishResponse::default()))
            .map_err(|e| status(e.error))
    }

    pub(super) async fn bulk_publish_event_alpha1(
        &self,
        request: Request<runtime::BulkPublishRequest>,
    ) -> Result<Response<runtime::BulkPublishResponse>, Status> {
        self.bulk_publish_event(request).await
    }
}
