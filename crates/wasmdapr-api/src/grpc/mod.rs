//! The Dapr gRPC API: [`GrpcApi`] implements the generated
//! `dapr.proto.runtime.v1.Dapr` service (from the `dapr` crate) over
//! [`DaprApi`]. Values are raw bytes, stored as given.
//!
//! Errors carry the gRPC code of the runtime's error table and, as Dapr's
//! do, a `google.rpc.ErrorInfo` detail whose `reason` is the Dapr error code
//! (`ERR_STATE_STORE_NOT_FOUND`); the message starts with the code too, for
//! clients that read no details. The ~70 methods of building blocks this
//! runtime does not have yet answer `UNIMPLEMENTED`, naming the method.
//!
//! # Layout
//!
//! tonic makes the whole Dapr service one trait, so its one impl is here,
//! written by `dapr_service!` at the end of this file: a dispatcher that
//! sends each implemented method to an inherent method of [`GrpcApi`] of
//! the same name, from request message to response message, in the file of
//! its building block — `state`, `pubsub` (with the streaming
//! subscription), `invoke`, `metadata` (with shutdown).
//! A new block is a new file and its methods moved from `unimplemented`
//! to `implemented` in the list below.

mod invoke;
mod metadata;
pub(crate) mod pubsub;
mod state;

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use dapr::dapr::proto::common::v1 as common;
use dapr::dapr::proto::runtime::v1 as runtime;
use dapr::dapr::proto::runtime::v1::dapr_server::{Dapr, DaprServer};
use futures::Stream;
use tonic::service::interceptor::InterceptedService;
use tonic::{Code, Request, Response, Status};
use wasmdapr_runtime::{ApiError, DaprApi, ErrorKind};

use crate::config::{API_TOKEN_HEADER, ApiConfig, ApiToken};
pub(crate) use crate::error::status;

/// The Dapr gRPC service over a [`DaprApi`].
#[derive(Clone)]
pub struct GrpcApi {
    api: Arc<dyn DaprApi>,
}

impl GrpcApi {
    /// The service over `api`.
    pub fn new(api: Arc<dyn DaprApi>) -> Self {
        Self { api }
    }
}

/// The server-side interceptor checking `dapr-api-token`.
#[derive(Clone)]
pub struct TokenCheck(Option<ApiToken>);

impl tonic::service::Interceptor for TokenCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(token) = &self.0 else {
            return Ok(request);
        };
        let given = request
            .metadata()
            .get(API_TOKEN_HEADER)
            .map(|v| v.as_bytes());
        if token.matches(given) {
            Ok(request)
        } else {
            Err(status(ApiError::new(
                ErrorKind::Unauthorized,
                "authorization failed: the dapr-api-token metadata is missing or invalid",
            )))
        }
    }
}

/// The service with the token check and the message size limit of
/// `config`, ready for a tonic `Server` (the binary may add it to a router
/// of its own).
pub fn service(
    api: Arc<dyn DaprApi>,
    config: &ApiConfig,
) -> InterceptedService<DaprServer<GrpcApi>, TokenCheck> {
    InterceptedService::new(dapr_server(api, config), TokenCheck(config.token()))
}

/// The service with the size limit of `config` and no token check.
fn dapr_server(api: Arc<dyn DaprApi>, config: &ApiConfig) -> DaprServer<GrpcApi> {
    DaprServer::new(GrpcApi::new(api))
        .max_decoding_message_size(config.max_body_size)
        .max_encoding_message_size(usize::MAX)
}

/// Serves the Dapr gRPC API on `listener` until `shutdown` resolves, then
/// lets in-flight calls finish.
pub async fn serve_grpc(
    listener: tokio::net::TcpListener,
    api: Arc<dyn DaprApi>,
    config: ApiConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "Dapr gRPC API listening");
    }
    // The token check wraps the whole server, not the one service: it is
    // decided before routing, so paths of services this server does not
    // have (health, reflection) are refused like the rest, not answered
    // `UNIMPLEMENTED` to a caller without the token.
    tonic::transport::Server::builder()
        // A peer that stops answering pings is dropped rather than held.
        .http2_keepalive_interval(Some(GRPC_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(GRPC_KEEPALIVE_TIMEOUT))
        .tcp_keepalive(Some(GRPC_KEEPALIVE_INTERVAL))
        // Bounds per connection: streams at once (the HTTP/2 setting
        // clients obey), calls served at once, and resets a client may
        // leave pending (the rapid-reset attack).
        .max_concurrent_streams(Some(GRPC_MAX_STREAMS))
        .concurrency_limit_per_connection(GRPC_MAX_STREAMS as usize)
        .http2_max_pending_accept_reset_streams(Some(GRPC_MAX_PENDING_RESETS))
        // Headers as large as Dapr's clients send, no larger.
        .http2_max_header_list_size(Some(GRPC_MAX_HEADER_LIST))
        .layer(tonic::service::InterceptorLayer::new(TokenCheck(
            config.token(),
        )))
        .layer(tower::util::MapResponseLayer::new(
            too_large_is_exhausted::<tonic::body::Body>,
        ))
        .add_service(dapr_server(api, &config))
        .serve_with_incoming_shutdown(
            crate::server::incoming(listener, config.server.max_connections),
            shutdown,
        )
        .await
        .map_err(io::Error::other)
}

/// How often an idle gRPC connection is pinged, and how long a ping may
/// go unanswered before the connection is closed.
const GRPC_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const GRPC_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Calls one gRPC connection may have open at once.
const GRPC_MAX_STREAMS: u32 = 256;
/// Streams a client may reset before they are accepted (h2's default is 20).
const GRPC_MAX_PENDING_RESETS: usize = 20;
/// The largest header block accepted, in bytes (hyper's default is 16 MiB).
const GRPC_MAX_HEADER_LIST: u32 = 64 << 10;

/// tonic refuses a message over `max_decoding_message_size` with
/// `OUT_OF_RANGE`; daprd (grpc-go) answers `RESOURCE_EXHAUSTED`, which
/// clients retry on differently. The refusal is a trailers-only response
/// (the status in its headers), rewritten here as Dapr's
/// `ERR_BODY_TOO_LARGE`. No handler of ours answers `OUT_OF_RANGE`, and the
/// message is checked too, so nothing else is rewritten.
fn too_large_is_exhausted<B>(mut response: http::Response<B>) -> http::Response<B> {
    let Some(refused) = Status::from_header_map(response.headers()) else {
        return response;
    };
    if refused.code() != Code::OutOfRange
        || !refused
            .message()
            .contains("decoded message length too large")
    {
        return response;
    }
    let exhausted = status(ApiError::new(
        ErrorKind::BodyTooLarge,
        refused.message().to_owned(),
    ));
    let headers = response.headers_mut();
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        headers.remove(name);
    }
    if let Err(error) = exhausted.add_header(headers) {
        tracing::debug!(%error, "cannot rewrite a message-size refusal");
    }
    response
}

// ---------------------------------------------------------------- the service trait

/// A server stream of an unimplemented streaming method.
pub type UnimplementedStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn unimplemented(method: &str) -> Status {
    Status::unimplemented(format!("{method} is not implemented by wasmdapr yet"))
}

/// Writes the `Dapr` trait impl: implemented methods call the inherent
/// method of the same name; every other method answers `UNIMPLEMENTED`.
/// (One macro emits the whole impl so `#[async_trait]` sees every method.)
macro_rules! dapr_service {
    (
        implemented { $( $name:ident($req:ty) -> $resp:ty; )* }
        with_metadata { $( $mname:ident($mreq:ty) -> $mresp:ty; )* }
        unimplemented { $( $uname:ident($ureq:ty) -> $uresp:ty as $method:literal; )* }
        streams { $( $iname:ident($ireq:ty) -> $iassoc:ident = $istream:ty; )* }
        unimplemented_streams {
            $( $sname:ident($sreq:ty) -> $assoc:ident<$item:ty> as $smethod:literal; )*
        }
    ) => {
        #[tonic::async_trait]
        #[allow(unused_qualifications)]
        impl Dapr for GrpcApi {
            $(
                async fn $name(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                    GrpcApi::$name(self, request.into_inner())
                        .await
                        .map(Response::new)
                        .map_err(status)
                }
            )*
            $(
                async fn $mname(&self, request: Request<$mreq>) -> Result<Response<$mresp>, Status> {
                    GrpcApi::$mname(self, request).await
                }
            )*
            $(
                async fn $uname(&self, _request: Request<$ureq>) -> Result<Response<$uresp>, Status> {
                    Err(unimplemented($method))
                }
            )*
            $(
                type $iassoc = $istream;
                async fn $iname(&self, request: Request<$ireq>) -> Result<Response<Self::$iassoc>, Status> {
                    GrpcApi::$iname(self, request).await
                }
            )*
            $(
                type $assoc = UnimplementedStream<$item>;
                async fn $sname(&self, _request: Request<$sreq>) -> Result<Response<Self::$assoc>, Status> {
                    Err(unimplemented($smethod))
                }
            )*
        }
    };
}

dapr_service! {
    implemented {
        get_state(runtime::GetStateRequest) -> runtime::GetStateResponse;
        get_bulk_state(runtime::GetBulkStateRequest) -> runtime::GetBulkStateResponse;
        save_state(runtime::SaveStateRequest) -> ();
        delete_state(runtime::DeleteStateRequest) -> ();
        delete_bulk_state(runtime::DeleteBulkStateRequest) -> ();
        execute_state_transaction(runtime::ExecuteStateTransactionRequest) -> ();
        query_state_alpha1(runtime::QueryStateRequest) -> runtime::QueryStateResponse;
        get_metadata(runtime::GetMetadataRequest) -> runtime::GetMetadataResponse;
        set_metadata(runtime::SetMetadataRequest) -> ();
        shutdown(runtime::ShutdownRequest) -> ();
    }
    with_metadata {
        invoke_service(runtime::InvokeServiceRequest) -> common::InvokeResponse;
        publish_event(runtime::PublishEventRequest) -> ();
        bulk_publish_event(runtime::BulkPublishRequest) -> runtime::BulkPublishResponse;
        bulk_publish_event_alpha1(runtime::BulkPublishRequest) -> runtime::BulkPublishResponse;
    }
    unimplemented {
        invoke_binding(runtime::InvokeBindingRequest) -> runtime::InvokeBindingResponse as "InvokeBinding";
        get_secret(runtime::GetSecretRequest) -> runtime::GetSecretResponse as "GetSecret";
        get_bulk_secret(runtime::GetBulkSecretRequest) -> runtime::GetBulkSecretResponse as "GetBulkSecret";
        register_actor_timer(runtime::RegisterActorTimerRequest) -> () as "RegisterActorTimer";
        unregister_actor_timer(runtime::UnregisterActorTimerRequest) -> () as "UnregisterActorTimer";
        register_actor_reminder(runtime::RegisterActorReminderRequest) -> () as "RegisterActorReminder";
        unregister_actor_reminder(runtime::UnregisterActorReminderRequest) -> () as "UnregisterActorReminder";
        unregister_actor_reminders_by_type(runtime::UnregisterActorRemindersByTypeRequest) -> runtime::UnregisterActorRemindersByTypeResponse as "UnregisterActorRemindersByType";
        list_actor_reminders(runtime::ListActorRemindersRequest) -> runtime::ListActorRemindersResponse as "ListActorReminders";
        get_actor_state(runtime::GetActorStateRequest) -> runtime::GetActorStateResponse as "GetActorState";
        get_actor_reminder(runtime::GetActorReminderRequest) -> runtime::GetActorReminderResponse as "GetActorReminder";
        execute_actor_state_transaction(runtime::ExecuteActorStateTransactionRequest) -> () as "ExecuteActorStateTransaction";
        invoke_actor(runtime::InvokeActorRequest) -> runtime::InvokeActorResponse as "InvokeActor";
        get_configuration_alpha1(runtime::GetConfigurationRequest) -> runtime::GetConfigurationResponse as "GetConfigurationAlpha1";
        get_configuration(runtime::GetConfigurationRequest) -> runtime::GetConfigurationResponse as "GetConfiguration";
        unsubscribe_configuration_alpha1(runtime::UnsubscribeConfigurationRequest) -> runtime::UnsubscribeConfigurationResponse as "UnsubscribeConfigurationAlpha1";
        unsubscribe_configuration(runtime::UnsubscribeConfigurationRequest) -> runtime::UnsubscribeConfigurationResponse as "UnsubscribeConfiguration";
        try_lock_alpha1(runtime::TryLockRequest) -> runtime::TryLockResponse as "TryLockAlpha1";
        unlock_alpha1(runtime::UnlockRequest) -> runtime::UnlockResponse as "UnlockAlpha1";
        subtle_get_key_alpha1(runtime::SubtleGetKeyRequest) -> runtime::SubtleGetKeyResponse as "SubtleGetKeyAlpha1";
        subtle_encrypt_alpha1(runtime::SubtleEncryptRequest) -> runtime::SubtleEncryptResponse as "SubtleEncryptAlpha1";
        subtle_decrypt_alpha1(runtime::SubtleDecryptRequest) -> runtime::SubtleDecryptResponse as "SubtleDecryptAlpha1";
        subtle_wrap_key_alpha1(runtime::SubtleWrapKeyRequest) -> runtime::SubtleWrapKeyResponse as "SubtleWrapKeyAlpha1";
        subtle_unwrap_key_alpha1(runtime::SubtleUnwrapKeyRequest) -> runtime::SubtleUnwrapKeyResponse as "SubtleUnwrapKeyAlpha1";
        subtle_sign_alpha1(runtime::SubtleSignRequest) -> runtime::SubtleSignResponse as "SubtleSignAlpha1";
        subtle_verify_alpha1(runtime::SubtleVerifyRequest) -> runtime::SubtleVerifyResponse as "SubtleVerifyAlpha1";
        start_workflow_alpha1(runtime::StartWorkflowRequest) -> runtime::StartWorkflowResponse as "StartWorkflowAlpha1";
        get_workflow_alpha1(runtime::GetWorkflowRequest) -> runtime::GetWorkflowResponse as "GetWorkflowAlpha1";
        purge_workflow_alpha1(runtime::PurgeWorkflowRequest) -> () as "PurgeWorkflowAlpha1";
        terminate_workflow_alpha1(runtime::TerminateWorkflowRequest) -> () as "TerminateWorkflowAlpha1";
        pause_workflow_alpha1(runtime::PauseWorkflowRequest) -> () as "PauseWorkflowAlpha1";
        resume_workflow_alpha1(runtime::ResumeWorkflowRequest) -> () as "ResumeWorkflowAlpha1";
        raise_event_workflow_alpha1(runtime::RaiseEventWorkflowRequest) -> () as "RaiseEventWorkflowAlpha1";
        start_workflow_beta1(runtime::StartWorkflowRequest) -> runtime::StartWorkflowResponse as "StartWorkflowBeta1";
        get_workflow_beta1(runtime::GetWorkflowRequest) -> runtime::GetWorkflowResponse as "GetWorkflowBeta1";
        purge_workflow_beta1(runtime::PurgeWorkflowRequest) -> () as "PurgeWorkflowBeta1";
        terminate_workflow_beta1(runtime::TerminateWorkflowRequest) -> () as "TerminateWorkflowBeta1";
        pause_workflow_beta1(runtime::PauseWorkflowRequest) -> () as "PauseWorkflowBeta1";
        resume_workflow_beta1(runtime::ResumeWorkflowRequest) -> () as "ResumeWorkflowBeta1";
        raise_event_workflow_beta1(runtime::RaiseEventWorkflowRequest) -> () as "RaiseEventWorkflowBeta1";
        schedule_job_alpha1(runtime::ScheduleJobRequest) -> runtime::ScheduleJobResponse as "ScheduleJobAlpha1";
        schedule_job(runtime::ScheduleJobRequest) -> runtime::ScheduleJobResponse as "ScheduleJob";
        get_job_alpha1(runtime::GetJobRequest) -> runtime::GetJobResponse as "GetJobAlpha1";
        get_job(runtime::GetJobRequest) -> runtime::GetJobResponse as "GetJob";
        delete_job_alpha1(runtime::DeleteJobRequest) -> runtime::DeleteJobResponse as "DeleteJobAlpha1";
        delete_job(runtime::DeleteJobRequest) -> runtime::DeleteJobResponse as "DeleteJob";
        delete_jobs_by_prefix_alpha1(runtime::DeleteJobsByPrefixRequestAlpha1) -> runtime::DeleteJobsByPrefixResponseAlpha1 as "DeleteJobsByPrefixAlpha1";
        delete_jobs_by_prefix(runtime::DeleteJobsByPrefixRequest) -> runtime::DeleteJobsByPrefixResponse as "DeleteJobsByPrefix";
        list_jobs_alpha1(runtime::ListJobsRequestAlpha1) -> runtime::ListJobsResponseAlpha1 as "ListJobsAlpha1";
        list_jobs(runtime::ListJobsRequest) -> runtime::ListJobsResponse as "ListJobs";
        converse_alpha1(runtime::ConversationRequest) -> runtime::ConversationResponse as "ConverseAlpha1";
        converse_alpha2(runtime::ConversationRequestAlpha2) -> runtime::ConversationResponseAlpha2 as "ConverseAlpha2";
        create_index_alpha1(runtime::CreateIndexRequestAlpha1) -> () as "CreateIndexAlpha1";
        get_index_alpha1(runtime::GetIndexRequestAlpha1) -> runtime::GetIndexResponseAlpha1 as "GetIndexAlpha1";
        list_indexes_alpha1(runtime::ListIndexesRequestAlpha1) -> runtime::ListIndexesResponseAlpha1 as "ListIndexesAlpha1";
        delete_index_alpha1(runtime::DeleteIndexRequestAlpha1) -> () as "DeleteIndexAlpha1";
        index_documents_alpha1(runtime::IndexDocumentsRequestAlpha1) -> runtime::IndexDocumentsResponseAlpha1 as "IndexDocumentsAlpha1";
        get_documents_alpha1(runtime::GetDocumentsRequestAlpha1) -> runtime::GetDocumentsResponseAlpha1 as "GetDocumentsAlpha1";
        delete_documents_alpha1(runtime::DeleteDocumentsRequestAlpha1) -> runtime::DeleteDocumentsResponseAlpha1 as "DeleteDocumentsAlpha1";
        search_alpha1(runtime::SearchRequestAlpha1) -> runtime::SearchResponseAlpha1 as "SearchAlpha1";
        create_collection_alpha1(runtime::CreateCollectionRequestAlpha1) -> () as "CreateCollectionAlpha1";
        get_collection_alpha1(runtime::GetCollectionRequestAlpha1) -> runtime::GetCollectionResponseAlpha1 as "GetCollectionAlpha1";
        list_collections_alpha1(runtime::ListCollectionsRequestAlpha1) -> runtime::ListCollectionsResponseAlpha1 as "ListCollectionsAlpha1";
        delete_collection_alpha1(runtime::DeleteCollectionRequestAlpha1) -> () as "DeleteCollectionAlpha1";
        upsert_vectors_alpha1(runtime::UpsertVectorsRequestAlpha1) -> runtime::UpsertVectorsResponseAlpha1 as "UpsertVectorsAlpha1";
        delete_vectors_alpha1(runtime::DeleteVectorsRequestAlpha1) -> runtime::DeleteVectorsResponseAlpha1 as "DeleteVectorsAlpha1";
        get_vectors_alpha1(runtime::GetVectorsRequestAlpha1) -> runtime::GetVectorsResponseAlpha1 as "GetVectorsAlpha1";
        query_vectors_alpha1(runtime::QueryVectorsRequestAlpha1) -> runtime::QueryVectorsResponseAlpha1 as "QueryVectorsAlpha1";
        batch_query_vectors_alpha1(runtime::BatchQueryVectorsRequestAlpha1) -> runtime::BatchQueryVectorsResponseAlpha1 as "BatchQueryVectorsAlpha1";
    }
    streams {
        subscribe_topic_events_alpha1(tonic::Streaming<runtime::SubscribeTopicEventsRequestAlpha1>) -> SubscribeTopicEventsAlpha1Stream = pubsub::SubscribeTopicEventsStream;
    }
    unimplemented_streams {
        subscribe_configuration_alpha1(runtime::SubscribeConfigurationRequest) -> SubscribeConfigurationAlpha1Stream<runtime::SubscribeConfigurationResponse> as "SubscribeConfigurationAlpha1";
        subscribe_configuration(runtime::SubscribeConfigurationRequest) -> SubscribeConfigurationStream<runtime::SubscribeConfigurationResponse> as "SubscribeConfiguration";
        encrypt_alpha1(tonic::Streaming<runtime::EncryptRequest>) -> EncryptAlpha1Stream<runtime::EncryptResponse> as "EncryptAlpha1";
        decrypt_alpha1(tonic::Streaming<runtime::DecryptRequest>) -> DecryptAlpha1Stream<runtime::DecryptResponse> as "DecryptAlpha1";
    }
}
