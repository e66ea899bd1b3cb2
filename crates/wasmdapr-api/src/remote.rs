//! [`RemoteDapr`]: the [`DaprApi`](wasmdapr_runtime::DaprApi) of a Dapr sidecar in another process — a
//! real `daprd` or another `wasmdapr sidecar` — spoken to over Dapr's gRPC
//! API. A host handed this instead of the local runtime forwards every call,
//! and the caller sees the same values and the same [`ApiError`]s (Dapr's
//! error code travels in the `ErrorInfo` detail and is mapped back through
//! the runtime's one error table), so guests cannot tell the difference.

use async_trait::async_trait;
use dapr::dapr::proto::common::v1 as common;
use dapr::dapr::proto::runtime::v1 as runtime;
use dapr::dapr::proto::runtime::v1::dapr_client::DaprClient;
use prost::Message as _;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};
use wasmdapr_runtime::api::{
    AppConnectionProperties, AppHealthProperties, BulkStateItem, ComponentInfo, InvokeApi,
    MetadataApi, RuntimeMetadata, StateApi,
};
use wasmdapr_runtime::state::query::{QueryItem, QueryResponse};
use wasmdapr_runtime::state::{
    Concurrency, Consistency, DeleteRequest, GetRequest, Metadata, Operation, SetRequest,
    StateOptions, StateValue,
};
use wasmdapr_runtime::{ApiError, ErrorKind, GrpcCode, InvokeRequest, InvokeResponse};

use crate::config::API_TOKEN_HEADER;
use crate::invoke::{HTTP_STATUS_METADATA, invoke_message};

/// Why the remote sidecar could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("cannot use the Dapr sidecar at {endpoint}: {message}")]
pub struct RemoteError {
    /// The endpoint as given.
    pub endpoint: String,
    /// What went wrong.
    pub message: String,
}

/// A Dapr sidecar reached over gRPC.
#[derive(Clone)]
pub struct RemoteDapr {
    client: DaprClient<Channel>,
    token: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl RemoteDapr {
    /// Connects to `endpoint` (`http://host:port`, as `DAPR_GRPC_ENDPOINT`),
    /// sending `api_token` as `dapr-api-token` on every call when given.
    /// Connects eagerly, so a wrong endpoint fails at start.
    pub async fn connect(endpoint: &str, api_token: Option<&str>) -> Result<Self, RemoteError> {
        let error = |message: String| RemoteError {
            endpoint: endpoint.to_owned(),
            message,
        };
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| error(format!("not a valid endpoint URL ({e})")))?
            .connect_timeout(std::time::Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| error(format!("cannot connect ({e})")))?;
        let token = api_token
            .map(|t| {
                t.parse()
                    .map_err(|_| error("the API token is not a valid header value".into()))
            })
            .transpose()?;
        Ok(Self {
            client: DaprClient::new(channel),
            token,
        })
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(token) = &self.token {
            request
                .metadata_mut()
                .insert(API_TOKEN_HEADER, token.clone());
        }
        request
    }
}

/// `google.rpc.ErrorInfo`: its `reason` is the Dapr error code.
#[derive(Clone, PartialEq, prost::Message)]
struct ErrorInfo {
    #[prost(string, tag = "1")]
    reason: String,
}

fn grpc_code(code: Code) -> GrpcCode {
    match code {
        Code::InvalidArgument => GrpcCode::InvalidArgument,
        Code::NotFound => GrpcCode::NotFound,
        Code::FailedPrecondition => GrpcCode::FailedPrecondition,
        Code::Aborted => GrpcCode::Aborted,
        Code::Unimplemented => GrpcCode::Unimplemented,
        Code::PermissionDenied => GrpcCode::PermissionDenied,
        Code::Unauthenticated => GrpcCode::Unauthenticated,
        Code::ResourceExhausted => GrpcCode::ResourceExhausted,
        _ => GrpcCode::Internal,
    }
}

/// A remote failure as the [`ApiError`] the local runtime would have returned.
///
/// The Dapr code comes from the `ErrorInfo` detail, or from the message's
/// `CODE: ` prefix; a failure with neither (the sidecar is down, the call
/// timed out) keeps `fallback`, the operation's own code.
fn api_error(status: Status, fallback: ErrorKind) -> ApiError {
    let grpc = grpc_code(status.code());
    let from_details = dapr::google::rpc::Status::decode(status.details())
        .ok()
        .into_iter()
        .flat_map(|s| s.details)
        .filter(|any| any.type_url.ends_with("google.rpc.ErrorInfo"))
        .find_map(|any| ErrorInfo::decode(any.value.as_slice()).ok())
        .map(|info| info.reason);
    let message = status.message();
    let (prefix, rest) = match message.split_once(": ") {
        Some((code, rest)) if code.starts_with("ERR_") => (Some(code.to_owned()), rest),
        _ => (None, message),
    };
    let kind = from_details
        .or(prefix)
        .and_then(|code| ErrorKind::from_wire(&code, grpc))
        .unwrap_or(fallback);
    ApiError::new(kind, rest.to_owned())
}

fn concurrency(c: Concurrency) -> i32 {
    match c {
        Concurrency::Unspecified => 0,
        Concurrency::FirstWrite => 1,
        Concurrency::LastWrite => 2,
    }
}

fn consistency(c: Consistency) -> i32 {
    match c {
        Consistency::Unspecified => 0,
        Consistency::Eventual => 1,
        Consistency::Strong => 2,
    }
}

fn options(o: StateOptions) -> Option<common::StateOptions> {
    (o != StateOptions::default()).then(|| common::StateOptions {
        concurrency: concurrency(o.concurrency),
        consistency: consistency(o.consistency),
    })
}

fn etag(etag: Option<String>) -> Option<common::Etag> {
    etag.map(|value| common::Etag { value })
}

fn optional(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn set_item(r: SetRequest) -> common::StateItem {
    common::StateItem {
        key: r.key,
        value: r.value,
        etag: etag(r.etag),
        metadata: r.metadata,
        options: options(r.options),
    }
}

fn delete_item(r: DeleteRequest) -> common::StateItem {
    common::StateItem {
        key: r.key,
        value: Vec::new(),
        etag: etag(r.etag),
        metadata: r.metadata,
        options: options(r.options),
    }
}

/// The app connection a remote sidecar reports, in the runtime's terms
/// (daprd's `-1`, unlimited concurrency, is 0 as in the local runtime).
fn app_connection(p: runtime::AppConnectionProperties) -> AppConnectionProperties {
    AppConnectionProperties {
        port: u16::try_from(p.port).unwrap_or(0),
        protocol: p.protocol,
        channel_address: p.channel_address,
        max_concurrency: u32::try_from(p.max_concurrency).unwrap_or(0),
        health: p.health.map(|h| AppHealthProperties {
            health_check_path: h.health_check_path,
            health_probe_interval: h.health_probe_interval,
            health_probe_timeout: h.health_probe_timeout,
            health_threshold: h.health_threshold,
        }),
    }
}

#[async_trait]
impl StateApi for RemoteDapr {
    async fn get_state(&self, store: &str, r: GetRequest) -> Result<Option<StateValue>, ApiError> {
        let response = self
            .client
            .clone()
            .get_state(self.request(runtime::GetStateRequest {
                store_name: store.to_owned(),
                key: r.key,
                consistency: consistency(r.consistency),
                metadata: r.metadata,
            }))
            .await
            .map_err(|s| api_error(s, ErrorKind::StateGet))?
            .into_inner();
        // Dapr answers a missing key with an empty response.
        if response.data.is_empty() && response.etag.is_empty() {
            return Ok(None);
        }
        Ok(Some(StateValue {
            data: response.data,
            etag: optional(response.etag),
            metadata: response.metadata,
        }))
    }

    async fn get_bulk_state(
        &self,
        store: &str,
        keys: Vec<String>,
        parallelism: usize,
        metadata: Metadata,
    ) -> Result<Vec<BulkStateItem>, ApiError> {
        let response = self
            .client
            .clone()
            .get_bulk_state(self.request(runtime::GetBulkStateRequest {
                store_name: store.to_owned(),
                keys,
                parallelism: i32::try_from(parallelism).unwrap_or(i32::MAX),
                metadata,
            }))
            .await
            .map_err(|s| api_error(s, ErrorKind::StateBulkGet))?
            .into_inner();
        Ok(response
            .items
            .into_iter()
            .map(|item| {
                let present = !(item.data.is_empty() && item.etag.is_empty());
                BulkStateItem {
                    key: item.key,
                    value: present.then(|| StateValue {
                        data: item.data,
                        etag: optional(item.etag),
                        metadata: item.metadata,
                    }),
                    error: optional(item.error),
                }
            })
            .collect())
    }

    async fn save_state(&self, store: &str, items: Vec<SetRequest>) -> Result<(), ApiError> {
        self.client
            .clone()
            .save_state(self.request(runtime::SaveStateRequest {
                store_name: store.to_owned(),
                states: items.into_iter().map(set_item).collect(),
            }))
            .await
            .map_err(|s| api_error(s, ErrorKind::StateSave))?;
        Ok(())
    }

    async fn delete_state(&self, store: &str, r: DeleteRequest) -> Result<(), ApiError> {
        self.client
            .clone()
            .delete_state(self.request(runtime::DeleteStateRequest {
                store_name: store.to_owned(),
                key: r.key,
                etag: etag(r.etag),
                options: options(r.options),
                metadata: r.metadata,
            }))
            .await
            .map_err(|s| api_error(s, ErrorKind::StateDelete))?;
        Ok(())
    }

    async fn delete_bulk_state(
        &self,
        store: &str,
        requests: Vec<DeleteRequest>,
    ) -> Result<(), ApiError> {
        self.client
            .clone()
            .delete_bulk_state(self.request(runtime::DeleteBulkStateRequest {
                store_name: store.to_owned(),
                states: requests.into_iter().map(delete_item).collect(),
            }))
            .await
            .map_err(|s| api_error(s, ErrorKind::StateBulkDelete))?;
        Ok(())
    }

    async fn transact_state(
        &self,
        store: &str,
        operations: Vec<Operation>,
        metadata: Metadata,
    ) -> Result<(), ApiError> {
        let operations = operations
            .into_iter()
            .map(|op| match op {
                Operation::Upsert(r) => runtime::TransactionalStateOperation {
                    operation_type: "upsert".into(),
                    request: Some(set_item(r)),
                },
                Operation::Delete(r) => runtime::TransactionalStateOperation {
                    operation_type: "delete".into(),
                    request: Some(delete_item(r)),
                },
            })
            .collect();
        self.client
            .clone()
            .execute_state_transaction(self.request(runtime::ExecuteStateTransactionRequest {
                store_name: store.to_owned(),
                operations,
                metadata,
            }))
            .await
            .map_err(|s| api_error(s, ErrorKind::StateTransaction))?;
        Ok(())
    }

    async fn query_state(
        &self,
        store: &str,
        query: serde_json::Value,
        metadata: Metadata,
    ) -> Result<QueryResponse, ApiError> {
        let response = self
            .client
            .clone()
            .query_state_alpha1(self.request(runtime::QueryStateRequest {
                store_name: store.to_owned(),
                query: query.to_string(),
                metadata,
            }))
            .await
            .map_err(|s| api_error(s, ErrorKind::StateQuery))?
            .into_inner();
        Ok(QueryResponse {
            results: response
                .results
                .into_iter()
                .map(|r| QueryItem {
                    key: r.key,
                    data: r.data,
                    etag: optional(r.etag),
                })
                .collect(),
            token: optional(response.token),
        })
    }
}

#[async_trait]
impl InvokeApi for RemoteDapr {
    /// Over Dapr's gRPC `InvokeService`: the verb and query travel in the
    /// `HTTPExtension`, headers as metadata, the body as `Any` bytes. An
    /// app's non-2xx answer arrives as a gRPC error carrying
    /// `dapr-http-status`; it comes back as a response of that status whose
    /// body is the error message (gRPC has no place for the app's body).
    async fn invoke(
        &self,
        app_id: &str,
        request: InvokeRequest,
    ) -> Result<InvokeResponse, ApiError> {
        let (message, mut all) = invoke_message(request)?;
        let message = runtime::InvokeServiceRequest {
            id: app_id.to_owned(),
            message: Some(message),
        };
        let mut grpc_request = self.request(message);
        let headers = std::mem::take(grpc_request.metadata_mut()).into_headers();
        all.extend(headers);
        *grpc_request.metadata_mut() = tonic::metadata::MetadataMap::from_headers(all);
        match self.client.clone().invoke_service(grpc_request).await {
            Ok(response) => {
                let response = response.into_inner();
                let mut answer = http::Response::new(bytes::Bytes::from(
                    response.data.unwrap_or_default().value,
                ));
                if let Ok(value) = http::HeaderValue::from_str(&response.content_type)
                    && !response.content_type.is_empty()
                {
                    answer
                        .headers_mut()
                        .insert(http::header::CONTENT_TYPE, value);
                }
                Ok(answer)
            }
            Err(status) => {
                let app_status = status
                    .metadata()
                    .get(HTTP_STATUS_METADATA)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u16>().ok())
                    .and_then(|v| http::StatusCode::from_u16(v).ok());
                match app_status {
                    Some(code) => {
                        let mut answer =
                            http::Response::new(bytes::Bytes::from(status.message().to_owned()));
                        *answer.status_mut() = code;
                        Ok(answer)
                    }
                    None => Err(api_error(status, ErrorKind::DirectInvoke)),
                }
            }
        }
    }
}

#[async_trait]
impl MetadataApi for RemoteDapr {
    async fn metadata(&self) -> Result<RuntimeMetadata, ApiError> {
        let response = self
            .client
            .clone()
            .get_metadata(self.request(runtime::GetMetadataRequest::default()))
            .await
            .map_err(|s| api_error(s, ErrorKind::NotImplemented))?
            .into_inner();
        Ok(RuntimeMetadata {
            id: response.id,
            runtime_version: response.runtime_version,
            components: response
                .registered_components
                .into_iter()
                .map(|c| ComponentInfo {
                    name: c.name,
                    kind: c.r#type,
                    version: c.version,
                    capabilities: c.capabilities,
                })
                .collect(),
            extended: response.extended_metadata.into_iter().collect(),
            app_connection: response
                .app_connection_properties
                .map(app_connection)
                .unwrap_or_default(),
        })
    }

    async fn set_metadata(&self, key: &str, value: &str) -> Result<(), ApiError> {
        self.client
            .clone()
            .set_metadata(self.request(runtime::SetMetadataRequest {
                key: key.to_owned(),
                value: value.to_owned(),
            }))
            .await
            .map_err(|s| api_error(s, ErrorKind::NotImplemented))?;
        Ok(())
    }

    fn shutdown(&self) {
        // Shutting a remote sidecar down is the remote's operator's call, as
        // in Dapr, where an app's shutdown request stops its own sidecar only:
        // forward it, without waiting.
        let (mut client, request) = (
            self.client.clone(),
            self.request(runtime::ShutdownRequest {}),
        );
        tokio::spawn(async move {
            if let Err(status) = client.shutdown(request).await {
                tracing::warn!(%status, "the remote sidecar refused to shut down");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A remote status maps back to the same error kind, from the detail or the message prefix.
    #[test]
    fn statuses_map_back_to_kinds() {
        let s = Status::new(Code::Aborted, "ERR_STATE_SAVE: possible etag mismatch");
        let e = api_error(s, ErrorKind::StateGet);
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::StateSaveEtagMismatch, "possible etag mismatch")
        );
        let e = api_error(
            Status::new(Code::Unavailable, "connection refused"),
            ErrorKind::StateGet,
        );
        assert_eq!(e.kind, ErrorKind::StateGet);
    }
}
