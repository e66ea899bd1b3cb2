//! The metadata API's `GetMetadata` and `SetMetadata`, and `Shutdown`.

use dapr::dapr::proto::runtime::v1 as runtime;
use wasmdapr_runtime::ApiError;

use super::GrpcApi;

impl GrpcApi {
    /// `GetMetadata` with daprd's full shape: components with their
    /// capabilities, the extended attributes, the app connection.
    pub(super) async fn get_metadata(
        &self,
        _r: runtime::GetMetadataRequest,
    ) -> Result<runtime::GetMetadataResponse, ApiError> {
        let m = self.api.metadata().await?;
        let app = m.app_connection;
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
            extended_metadata: m.extended.into_iter().collect(),
            app_connection_properties: Some(runtime::AppConnectionProperties {
                port: i32::from(app.port),
                protocol: app.protocol,
                channel_address: app.channel_address,
                max_concurrency: i32::try_from(app.max_concurrency).unwrap_or(i32::MAX),
                health: app.health.map(|h| runtime::AppConnectionHealthProperties {
                    health_check_path: h.health_check_path,
                    health_probe_interval: h.health_probe_interval,
                    health_probe_timeout: h.health_probe_timeout,
                    health_threshold: h.health_threshold,
                }),
            }),
            ..Default::default()
        })
    }

    /// `SetMetadata`: an extended attribute, as `PUT /v1.0/metadata/{key}`.
    pub(super) async fn set_metadata(
        &self,
        r: runtime::SetMetadataRequest,
    ) -> Result<(), ApiError> {
        self.api.set_metadata(&r.key, &r.value).await
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
