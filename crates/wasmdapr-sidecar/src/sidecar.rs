//! The embedded Dapr sidecar: components loaded from the resources folders
//! (or the embedded SQLite default), the runtime over them, and its HTTP and
//! gRPC front doors on their ports; name resolution (`--config`, else the
//! shared SQLite default) so it can invoke other apps and be found by them;
//! the internal endpoint other sidecars call it on (mutual TLS, with the
//! trust bundle of `--enable-mtls` or the machine-local one); and, for an
//! app on `--app-port`, the [`HttpApp`] or [`GrpcApp`] it delivers to.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio::net::TcpListener;
use wasmdapr_api::http_app::HttpAppConfig;
use wasmdapr_api::{GrpcApp, HttpApp, InternalClient};
use wasmdapr_host::LocalDapr;
use wasmdapr_runtime::api::{AppConnectionProperties, AppHealthProperties, MetadataApi};
use wasmdapr_runtime::resources::Subscription;
use wasmdapr_runtime::runtime::{AppSubscriptions, DeliveryOptions, OutboxRelays};
use wasmdapr_runtime::{
    AppChannel, ChannelError, ComponentRegistry, ComponentSpec, Components, DaprApi, NameResolver,
    RemoteInvocation, Resources, Runtime,
};

use crate::identity::identity;
use crate::in_process::InProcessHttp;
use crate::name_resolution::name_resolver;
use crate::{AppConnection, SidecarConfig, SidecarError, termination};

/// A running sidecar.
pub struct Sidecar {
    /// The runtime its APIs serve.
    pub runtime: Arc<Runtime>,
    /// Where the HTTP API listens.
    pub http_addr: SocketAddr,
    /// Where the gRPC API listens.
    pub grpc_addr: SocketAddr,
    /// Where the internal endpoint listens (none without an identity).
    pub internal_addr: Option<SocketAddr>,
    /// The HTTP API's router and settings, also served in-process to the
    /// app's outbound requests to `http_addr` (see [`Sidecar::local_dapr`]).
    http_router: axum::Router,
    api_token: Option<String>,
    /// The APIs' body limit, also the largest answer taken from the app.
    max_body_size: usize,
    /// Where this sidecar announces its app and resolves others.
    name_resolver: Option<Arc<dyn NameResolver>>,
    /// The `Subscription` resources of the resources folders, started
    /// (with the app's own) once the app is connected.
    declared_subscriptions: Vec<Subscription>,
    delivery: DeliveryOptions,
    /// The app's running subscriptions, closed when the sidecar stops.
    subscriptions: tokio::sync::Mutex<Option<AppSubscriptions>>,
    /// The outbox relays of the app's state stores (they need no app).
    outbox: Option<OutboxRelays>,
    tasks: tokio::task::JoinSet<Result<(), SidecarError>>,
}

/// The registry of every component type wasmdapr has.
fn registry() -> ComponentRegistry {
    let mut registry = ComponentRegistry::new();
    wasmdapr_components::register(&mut registry);
    registry
}

impl Sidecar {
    /// Loads the components and starts the APIs on their ports.
    pub async fn start(config: SidecarConfig) -> Result<Self, SidecarError> {
        let (specs, declared_subscriptions) = if config.resources_paths.is_empty() {
            let specs = ComponentSpec::embedded_defaults(&config.embedded_dir)
                .into_iter()
                .map(Into::into)
                .collect();
            (specs, Vec::new())
        } else {
            let resources = Resources::load_dirs(&config.resources_paths)?;
            (resources.components, resources.subscriptions)
        };
        let registry = registry();
        // Opening the name resolution database and issuing the sidecar's
        // certificate (key generation, on the blocking pool) overlap
        // loading the components, so they add little to a cold start.
        let identity = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || identity(&config))
        };
        let (components, name_resolver, identity) = tokio::join!(
            Components::load_declared(specs, &registry),
            name_resolver(
                config.config_file.as_deref(),
                config.data_dir.as_deref(),
                &registry,
            ),
            identity
        );
        let (components, name_resolver) = (Arc::new(components?), name_resolver?);
        let identity = identity.map_err(|e| SidecarError::Mtls(e.to_string()))??;
        let api_config = config.api;
        let max_body_size = api_config.max_body_size;
        let mut runtime = Runtime::new(config.app_id, components);
        if let (Some(resolver), Some(identity)) = (&name_resolver, &identity) {
            let invoker = InternalClient::new(identity.clone(), max_body_size);
            runtime = runtime.with_remote_invocation(RemoteInvocation {
                resolver: resolver.clone(),
                invoker: Arc::new(invoker),
            });
        }
        let runtime = Arc::new(runtime);
        let outbox = runtime.start_outbox_relays().await;
        let listen_address = config.listen_address;
        let bind = |api: &'static str, port: u16| {
            let addr = SocketAddr::new(listen_address, port);
            async move {
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| SidecarError::Listen { api, addr, source })
            }
        };
        let http = bind("HTTP", config.http_port).await?;
        let grpc = bind("gRPC", config.grpc_port).await?;
        let internal = match &identity {
            Some(_) => Some(bind("internal gRPC", config.internal_grpc_port).await?),
            None => None,
        };
        let local = |api, listener: &TcpListener, port| {
            listener
                .local_addr()
                .map_err(|source| SidecarError::Listen {
                    api,
                    addr: SocketAddr::new(listen_address, port),
                    source,
                })
        };
        let http_addr = local("HTTP", &http, config.http_port)?;
        let grpc_addr = local("gRPC", &grpc, config.grpc_port)?;
        let internal_addr = internal
            .as_ref()
            .map(|l| local("internal gRPC", l, config.internal_grpc_port))
            .transpose()?;
        let http_router = wasmdapr_api::http::router(runtime.clone(), api_config.clone());
        let api_token = api_config.api_token.clone().filter(|t| !t.is_empty());
        // Both servers stop when the runtime is asked to shut down.
        let stopped = |rt: &Arc<Runtime>| {
            let rt = rt.clone();
            async move { rt.shutdown_requested().await }
        };
        let failed = |api: &'static str| {
            move |e: std::io::Error| SidecarError::Serve {
                api,
                message: e.to_string(),
            }
        };
        let api: Arc<dyn DaprApi> = runtime.clone();
        let mut tasks = tokio::task::JoinSet::new();
        let http_server =
            wasmdapr_api::serve_http(http, api.clone(), api_config.clone(), stopped(&runtime));
        tasks.spawn(async move { http_server.await.map_err(failed("HTTP")) });
        let grpc_server =
            wasmdapr_api::serve_grpc(grpc, api, api_config.clone(), stopped(&runtime));
        tasks.spawn(async move { grpc_server.await.map_err(failed("gRPC")) });
        if let (Some(listener), Some(identity)) = (internal, identity) {
            let (runtime, stop) = (runtime.clone(), stopped(&runtime));
            tasks.spawn(async move {
                wasmdapr_api::internal::serve_internal(
                    listener,
                    runtime,
                    &identity,
                    &api_config,
                    stop,
                )
                .await
                .map_err(failed("internal gRPC"))
            });
        }
        tracing::info!(%http_addr, %grpc_addr, app = %runtime.app_id(), "Dapr APIs listening");
        Ok(Self {
            runtime,
            http_addr,
            grpc_addr,
            internal_addr,
            http_router,
            api_token,
            max_body_size,
            name_resolver,
            declared_subscriptions,
            delivery: config.delivery,
            subscriptions: tokio::sync::Mutex::new(None),
            outbox: Some(outbox),
            tasks,
        })
    }

    /// Connects the app process at `app`: waits until it is ready (its port
    /// open and, with a health check, its health path or gRPC
    /// `HealthCheck` answering) and makes it this runtime's app channel, as
    /// daprd does for `--app-port`: an [`HttpApp`] for `--app-protocol
    /// http`, a [`GrpcApp`] (Dapr's `AppCallback` service) for `grpc`.
    pub async fn connect_app(&self, app: AppConnection) -> Result<(), SidecarError> {
        // `/v1.0/healthz` answers 500 until the app is connected, as daprd's.
        self.runtime.expect_app();
        self.runtime.set_app_connection(AppConnectionProperties {
            port: app.address.port(),
            protocol: app.protocol.clone(),
            channel_address: app.address.ip().to_string(),
            max_concurrency: app
                .max_concurrency
                .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)),
            health: app.health.as_ref().map(|health| {
                AppHealthProperties::new(&health.path, health.interval, health.timeout, 0)
            }),
        });
        let config = HttpAppConfig {
            app_id: self.runtime.app_id().clone(),
            address: app.address,
            app_token: app.app_token,
            health: app.health,
            max_body_size: self.max_body_size,
            max_concurrency: app.max_concurrency,
        };
        // Like daprd, wait as long as the app takes to come up (logging
        // while waiting); a shutdown ends the wait.
        type Ready = Pin<Box<dyn Future<Output = Result<(), ChannelError>> + Send>>;
        let (app, ready): (Arc<dyn AppChannel>, Ready) = if app.protocol == "grpc" {
            let app = GrpcApp::new(config)?;
            let probe = app.clone();
            (
                Arc::new(app),
                Box::pin(async move { probe.wait_ready(None).await }),
            )
        } else {
            let app = HttpApp::new(config)?;
            let probe = app.clone();
            (
                Arc::new(app),
                Box::pin(async move { probe.wait_ready(None).await }),
            )
        };
        tokio::select! {
            ready = ready => ready?,
            _ = self.runtime.shutdown_requested() => return Ok(()),
        }
        // Subscribed before connected: the sidecar reports ready (and
        // publishers may start) only once the app's subscriptions run.
        self.start_subscriptions(app.clone()).await;
        if self.runtime.set_app_channel(app).is_err() {
            tracing::warn!("an app channel was already connected; --app-port is ignored");
        }
        Ok(())
    }

    /// Starts delivering events to the app behind `channel`: its
    /// declarative subscriptions and those its `GET /dapr/subscribe`
    /// answers, as daprd does once the app channel is ready. Called by
    /// [`Sidecar::connect_app`] and by a served Wasm app, before the
    /// channel is connected; a second call does nothing.
    pub async fn start_subscriptions(&self, channel: Arc<dyn AppChannel>) {
        let mut running = self.subscriptions.lock().await;
        if running.is_some() {
            return;
        }
        let started = self
            .runtime
            .start_app_subscriptions(channel, &self.declared_subscriptions, self.delivery)
            .await;
        *running = Some(started);
    }

    /// `(pubsub, topic)` of the app's running subscriptions.
    pub async fn subscribed_topics(&self) -> Vec<(String, String)> {
        self.subscriptions
            .lock()
            .await
            .as_ref()
            .map(AppSubscriptions::topics)
            .unwrap_or_default()
    }

    /// The sidecar's HTTP API served in-process to a guest's outbound
    /// requests to [`Sidecar::http_addr`]: the same router as on the socket,
    /// with `dapr-api-token` added by the host. `implicit_grant` lets the
    /// app call it without an `--allow-host` for that address.
    pub fn local_dapr(&self, implicit_grant: bool) -> LocalDapr {
        LocalDapr {
            addr: self.http_addr,
            api_token: self.api_token.clone(),
            implicit_grant,
            handler: Arc::new(InProcessHttp(self.http_router.clone())),
        }
    }

    /// Runs until the shutdown API is called, Ctrl-C or SIGTERM arrives, or
    /// a server fails; then stops every server gracefully.
    pub async fn wait(self) -> Result<(), SidecarError> {
        self.run_until(termination()).await
    }

    /// Runs until `stop` completes, the shutdown API is called or a server
    /// fails; then stops every server gracefully.
    ///
    /// While it runs, the app is announced in name resolution (so other
    /// sidecars can invoke it); on a clean stop it is withdrawn. The app is
    /// announced only here, not at [`Sidecar::start`], so that other
    /// sidecars find it only once its app is connected.
    pub async fn run_until(mut self, stop: impl Future<Output = ()>) -> Result<(), SidecarError> {
        if let (Some(resolver), Some(internal_addr)) = (&self.name_resolver, self.internal_addr) {
            // Other sidecars call the internal endpoint. Listening on every
            // address: announce loopback, which other sidecars on this
            // machine (the SQLite resolver's scope) reach.
            let mut announced = internal_addr;
            if announced.ip().is_unspecified() {
                announced.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            resolver
                .register(self.runtime.app_id(), &announced.to_string())
                .await?;
        }
        if self.runtime.app_channel().is_none() {
            for sub in &self.declared_subscriptions {
                tracing::warn!(
                    file = %sub.source.display(),
                    "Subscription `{}` (topic `{}` of `{}`) is not started: no app is connected to deliver to",
                    sub.name,
                    sub.topic,
                    sub.pubsub_name
                );
            }
        }
        let first = tokio::select! {
            _ = stop => None,
            _ = self.runtime.shutdown_requested() => None,
            done = self.tasks.join_next() => done,
        };
        self.stop(first).await
    }

    /// Stops every server gracefully (requests in flight are finished) and
    /// withdraws the app from name resolution; what the shutdown API does,
    /// for an embedder.
    pub async fn shutdown(self) -> Result<(), SidecarError> {
        self.stop(None).await
    }

    /// Asks the servers to stop, withdraws the app and waits for them; the
    /// first server error (`first`, else any later one) is the result.
    async fn stop(
        mut self,
        first: Option<Result<Result<(), SidecarError>, tokio::task::JoinError>>,
    ) -> Result<(), SidecarError> {
        MetadataApi::shutdown(&*self.runtime);
        // No new event is taken; deliveries in flight finish.
        if let Some(subscriptions) = self.subscriptions.lock().await.take() {
            subscriptions.close().await;
        }
        if let Some(outbox) = self.outbox.take() {
            outbox.close().await;
        }
        if let Some(resolver) = &self.name_resolver
            && let Err(error) = resolver.deregister().await
        {
            tracing::warn!(%error, "could not withdraw the app from name resolution");
        }
        if let Some(Ok(Err(error))) = first {
            return Err(error);
        }
        while let Some(done) = self.tasks.join_next().await {
            if let Ok(Err(error)) = done {
                return Err(error);
            }
        }
        Ok(())
    }
}
