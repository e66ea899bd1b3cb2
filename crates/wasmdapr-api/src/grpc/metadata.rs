//! The metadata API's `GetMetadata`, and `Shutdown`.

use dapr::dapr::proto::runtime::v1 as runtime;
use wasmdapr_runtime::ApiError;

use super::GrpcApi;

impl GrpcApi {
    pub(super) async fn get_metadata(
        &self,
        _r: runtime::GetMetadataRequest,
    ) -> Result<runtime::GetMetadataResponse, ApiError> {
        let m = self.api.metadata().await?;
        Ok(runtime::GetMetadataResponse {
            id: m.id,
            runtime_version: m.runtime_version,
            registered_components: m
                .components
                .into_iter()
                .map(|c| runtime::RegisteredComponents {
                    name: c.name,
                    r#type: c.kind,
                    version: c.version,
                    capabilities: c.capabilities,
                })
                .collect(),
            ..Default::default()
        })
    }

    /// Answers first, then asks the process to stop.
    pub(super) async fn shutdown(&self, _r: runtime::ShutdownRequest) -> Result<(), ApiError> {
        tracing::info!("shutdown requested through the gRPC API");
        let api = self.api.clone();
        tokio::spawn(async move {
            tokio::task::yield_now().await;
            api.shutdown();
        });
        Ok(())
    }
}
