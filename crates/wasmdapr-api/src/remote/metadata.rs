//! The metadata calls, over `GetMetadata` and `SetMetadata`, and `Shutdown`.

use async_trait::async_trait;
use dapr::dapr::proto::runtime::v1 as runtime;
use wasmdapr_runtime::api::MetadataApi;
use wasmdapr_runtime::api::{
    AppConnectionProperties, AppHealthProperties, ComponentInfo, RuntimeMetadata,
};
use wasmdapr_runtime::{ApiError, ErrorKind};

use super::{RemoteDapr, api_error};

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

/// The remote's app connection as the runtime's type.
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
