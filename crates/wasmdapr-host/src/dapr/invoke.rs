//! `wasmdapr:dapr/invoke`: service invocation, onto
//! [`DaprApi::invoke`](wasmdapr_runtime::DaprApi::invoke).

use wasmdapr_runtime::{ApiError, InvokeRequest};

use super::generated::wasmdapr::dapr::invoke::Host;
use super::{DaprView, Error, InvokeAnswer, InvokeCall, call};

/// A guest's call as the runtime's [`InvokeRequest`]; a verb or header that
/// is not valid HTTP is the guest's malformed request.
fn invoke_request(call: InvokeCall) -> Result<InvokeRequest, ApiError> {
    let verb = http::Method::from_bytes(call.verb.as_bytes())
        .map_err(|_| ApiError::malformed(format!("`{}` is not an HTTP verb", call.verb)))?;
    let mut headers = http::HeaderMap::new();
    for (name, value) in call.headers {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ApiError::malformed(format!("`{name}` is not a header name")))?;
        let value = http::HeaderValue::from_str(&value)
            .map_err(|_| ApiError::malformed(format!("the value of `{name}` is not valid")))?;
        headers.append(name, value);
    }
    Ok(InvokeRequest {
        method: call.method,
        verb,
        query: call.query,
        headers,
        body: call.body.into(),
    })
}

impl Host for DaprView {
    async fn call(
        &mut self,
        app_id: String,
        request: InvokeCall,
    ) -> wasmtime::Result<Result<InvokeAnswer, Error>> {
        let request = match invoke_request(request) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e.into())),
        };
        let response = call(self, |api| api.invoke(&app_id, request)).await;
        Ok(response.map(|response| {
            let (parts, body) = response.into_parts();
            InvokeAnswer {
                status: parts.status.as_u16(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(name, value)| {
                        (
                            name.as_str().to_owned(),
                            String::from_utf8_lossy(value.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
                body: body.to_vec(),
            }
        }))
    }
}
