//! Service invocation: `InvokeService`.

use dapr::dapr::proto::common::v1 as common;
use dapr::dapr::proto::runtime::v1 as runtime;
use tonic::{Request, Response, Status};
use wasmdapr_runtime::ApiError;

use super::{GrpcApi, status};
use crate::invoke::{HTTP_STATUS_METADATA, content_type, grpc_code_for_http, invoke_request};

impl GrpcApi {
    /// `InvokeService`: the request as [`invoke_request`] reads it, headers
    /// from the call's metadata. A 2xx answer is the response; any other
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
        let request = invoke_request(message, headers).map_err(status)?;
        let response = self.api.invoke(&r.id, request).await.map_err(status)?;
        let code = response.status();
        let content_type = content_type(response.headers());
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
