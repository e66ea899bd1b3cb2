//! Service invocation: `InvokeService`.

use dapr::dapr::proto::common::v1 as common;
use dapr::dapr::proto::runtime::v1 as runtime;
use tonic::{Request, Response, Status};
use wasmdapr_runtime::{ApiError, InvokeRequest};

use super::{GrpcApi, status};
use crate::invoke::{HTTP_STATUS_METADATA, grpc_code_for_http, verb_from_grpc};

impl GrpcApi {
    /// `InvokeService`: the verb and query come from the `HTTPExtension`,
    /// headers from the call's metadata, the body from `data` (its bytes,
    /// whatever the `Any`'s type). A 2xx answer is the response; any other
    /// status is an error of the matching gRPC code carrying the status in
    /// `dapr-http-status` metadata, as Dapr answers gRPC callers of HTTP apps.
    pub(super) async fn invoke_service(
        &self,
        request: Request<runtime::InvokeServiceRequest>,
    ) -> Result<Response<common::InvokeResponse>, Status> {
        let (metadata, _, r) = request.into_parts();
        let message = r
            .message
            .ok_or_else(|| status(ApiError::malformed("InvokeService needs a message")))?;
        let extension = message.http_extension.unwrap_or_default();
        let verb = verb_from_grpc(extension.verb).map_err(status)?;
        let mut headers = metadata.into_headers();
        // gRPC's own headers describe this call, not the app's request.
        for name in [
            "content-type",
            "te",
            "user-agent",
            "grpc-timeout",
            "grpc-encoding",
            "grpc-accept-encoding",
        ] {
            headers.remove(name);
        }
        if !message.content_type.is_empty()
            && let Ok(value) = http::HeaderValue::from_str(&message.content_type)
        {
            headers.insert(http::header::CONTENT_TYPE, value);
        }
        let request = InvokeRequest {
            method: message.method,
            verb,
            query: Some(extension.querystring).filter(|q| !q.is_empty()),
            headers,
            body: message.data.map(|d| d.value).unwrap_or_default().into(),
        };
        let response = self.api.invoke(&r.id, request).await.map_err(status)?;
        let code = response.status();
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if !code.is_success() {
            let mut error = Status::new(
                grpc_code_for_http(code.as_u16()),
                format!(
                    "the app answered {code}: {}",
                    String::from_utf8_lossy(response.body())
                ),
            );
            if let Ok(value) = code.as_u16().to_string().parse() {
                error.metadata_mut().insert(HTTP_STATUS_METADATA, value);
            }
            return Err(error);
        }
        let mut answer = Response::new(common::InvokeResponse {
            data: Some(prost_types::Any {
                type_url: String::new(),
                value: response.into_body().to_vec(),
            }),
            content_type,
        });
        if let Ok(value) = code.as_u16().to_string().parse() {
            answer.metadata_mut().insert(HTTP_STATUS_METADATA, value);
        }
        Ok(answer)
    }
}
