//! Service invocation for [`Runtime`]: [`InvokeApi`] and the internal
//! endpoint's entry point. Where a call goes, and how headers and the
//! caller's identity travel, is [`crate::invoke`]'s; this file only hands it
//! the runtime's app id, app channel and remote invocation.

use async_trait::async_trait;

use super::Runtime;
use crate::api::InvokeApi;
use crate::app_id::AppId;
use crate::error::ApiError;
use crate::invoke::{self, InvokeRequest, InvokeResponse};

impl Runtime {
    /// Delivers a call another sidecar forwarded to this runtime's app, as
    /// from `caller`, the app id that sidecar authenticated as (see
    /// [`invoke::deliver_forwarded`]): the internal endpoint's entry point.
    pub async fn invoke_forwarded(
        &self,
        caller: &AppId,
        target: &str,
        request: InvokeRequest,
    ) -> Result<InvokeResponse, ApiError> {
        invoke::deliver_forwarded(
            &self.app_id,
            self.app_channel.get(),
            caller,
            target,
            request,
        )
        .await
    }
}

#[async_trait]
impl InvokeApi for Runtime {
    async fn invoke(
        &self,
        app_id: &str,
        request: InvokeRequest,
    ) -> Result<InvokeResponse, ApiError> {
        invoke::route(
            &self.app_id,
            self.app_channel.get(),
            self.remote.as_ref(),
            app_id,
            request,
        )
        .await
    }
}
