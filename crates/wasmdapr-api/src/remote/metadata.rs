//! The metadata call, over `GetMetadata`, and `Shutdown`.

use dapr::dapr::proto::runtime::v1 as runtime;
use wasmdapr_runtime::api::{ComponentInfo, RuntimeMetadata};
use wasmdapr_runtime::{ApiError, ErrorKind};

use super::{RemoteDapr, api_error};

impl RemoteDapr {
    pub(super) async fn metadata(&self) -> Result<RuntimeMetadata, ApiError> {
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
        })
    }

    pub(super) fn shutdown(&self) {
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
