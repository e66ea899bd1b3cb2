//! The sidecar's HTTP API served in-process to a guest's outbound requests.

use std::future::Future;
use std::pin::Pin;

use tower::ServiceExt;
use wasmdapr_host::LocalHttp;
use wasmdapr_host::outbound::{BoxBody, box_body};

/// The sidecar's axum router as the host's [`LocalHttp`]: one request is one
/// `oneshot` call, with no socket in between.
pub(crate) struct InProcessHttp(pub(crate) axum::Router);

impl LocalHttp for InProcessHttp {
    fn handle(
        &self,
        request: axum::http::Request<BoxBody>,
    ) -> Pin<Box<dyn Future<Output = axum::http::Response<BoxBody>> + Send + 'static>> {
        let router = self.0.clone();
        Box::pin(async move {
            let request = request.map(axum::body::Body::new);
            match router.oneshot(request).await {
                Ok(response) => response.map(box_body),
                Err(never) => match never {},
            }
        })
    }
}
