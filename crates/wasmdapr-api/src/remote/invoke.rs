//! Service invocation, over `InvokeService`.

use async_trait::async_trait;
use dapr::dapr::proto::runtime::v1 as runtime;
use wasmdapr_runtime::api::InvokeApi;
use wasmdapr_runtime::{ApiError, ErrorKind, InvokeRequest, InvokeResponse};

use super::{RemoteDapr, api_error};
use crate::invoke::{HTTP_STATUS_METADATA, invoke_message, set_content_type};

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
                set_content_type(answer.headers_mut(), &response.content_type);
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
