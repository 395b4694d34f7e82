//! Building and running the server; `main` and the integration tests call the same code.

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use tokio::net::TcpListener;
use workflows::{
    Engine, EngineSettings, Registry,
    housekeeping::{self, Scheduler},
    runtime::{QueueBackend, RedisRunQueue, SqliteRunQueue},
};

use crate::{
    auth::{self, keyring::KeyRing, oidc::Oidc, quotas::Quotas},
    bus::{EventBus, RedisSettings},
    config::Config,
    db, http, maintenance,
    services::{
        data_keys::{self, Keys},
        master_fence, users,
    },
    state::AppState,
};

/// A server bound to its port, ready to run.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    state: AppState,
}

impl Application {
    /// Binds the listener first (a port in use fails fast), then opens the database and
    /// applies pending migrations unless turned off.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        // One TLS crypto provider for every client (OIDC, later S3 and Route53): ring, which
        // the database driver already uses. Installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = TcpListener::bind(config.http.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.http.listen))?;
        // Before the database: a Redis that does not answer stops start-up having created
        // nothing (not even the SQLite file).
        let bus = connect_bus(&config).await?;
        auth::argon2_gate::configure(config.limits.argon2_slots(), config.limits.argon2_waiting);
        let mut conn = db::connect(&config.database).await?;
        let statements = db::count_statements(&mut conn);
        // Before migrating: a wrong master key stops start-up with its one line, having
        // changed nothing. A database without the tables holds no keys yet.
        let master = auth::master_key::load(&config.auth, &config.database.url)?;
        data_keys::check_master_key(&conn, &master).await?;
        if config.database.migrate_on_start {
            Migrator::up(&conn, None)
                .await
                .context("applying database migrations")?;
        }
        master_fence::record_if_unset(&conn, &master.id()).await?;
        let master_id = master.id();
        let keys = Arc::new(Keys::new(master));
        let keyring = KeyRing::load(
            conn.clone(),
            keys.instance_key(),
            master_id,
            config.auth.access_token_ttl,
        )
        .await
        .context("loading the token signing keys")?;
        if let Some(admin) = &config.auth.admin {
            users::bootstrap_admin(&conn, admin).await?;
        }
        let public_url = match &config.auth.public_url {
            Some(url) => url.as_str().trim_end_matches('/').to_owned(),
            None => format!("http://{}", listener.local_addr()?),
        };
        let oidc = config
            .auth
            .oidc
            .clone()
            .map(|settings| Oidc::new(settings, &public_url, keys.instance_key()).map(Arc::new))
            .transpose()?;
        let queue = connect_queue(&config, &conn).await?;
        let engine = Engine::new(
            conn.clone(),
            bus.clone(),
            registry(&config),
            queue.queue(),
            EngineSettings {
                cancel_poll: config.workflows.cancel_poll,
                ..Default::default()
            },
        );
        let reads = db::Reads::new(
            conn.clone(),
            statements.clone(),
            config.database.max_connections,
        );
        let quotas = Arc::new(Quotas::new(config.limits.clone()));
        let state = AppState {
            db: conn,
            reads,
            config: Arc::new(config),
            bus,
            engine,
            queue,
            keys,
            keyring,
            login_limiter: Default::default(),
            verified_keys: Default::default(),
            quotas,
            oidc,
            statements,
        };
        tokio::spawn(maintenance::run_until_stopped(state.clone()));
        let role = state.config.workflows.role;
        let router = if role.serves_api() {
            http::router(state.clone())
        } else {
            http::health_router(state.clone())
        };
        Ok(Application {
            listener,
            router,
            state,
        })
    }

    /// The bound address (the real port when configured with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The shared state, for tests that seed data directly.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = self.local_addr();
        tracing::info!(
            %addr,
            database = %self.state.config.database.url.redacted(),
            bus = self.state.bus.transport_name(),
            "autoglue {} listening", crate::VERSION
        );
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let workers = self.state.config.workflows.role.runs_workers().then(|| {
            let state = self.state.clone();
            let settings = &state.config.workflows;
            let name = workflows::runtime::unique_worker_name("autoglue");
            tracing::info!(
                worker = %name,
                queue = state.queue.name(),
                concurrency = settings.workers,
                "workflow worker starting"
            );
            tokio::spawn(
                Scheduler {
                    period: HOUSEKEEPING_PERIOD,
                    run_retention: settings.run_retention,
                }
                .run(state.engine.clone()),
            );
            let mut stopped = stopped.clone();
            tokio::spawn(state.queue.clone().run_workers(
                state.engine.clone(),
                name,
                settings.workers,
                async move {
                    let _ = stopped.wait_for(|s| *s).await;
                },
            ))
        });
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let served = axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown)
            .await
            .context("HTTP server failed");
        // Running steps get a moment to finish; what does not finish is handed back by the
        // queue (its lease expires) and resumed by another worker.
        let _ = stop.send(true);
        if let Some(workers) = workers {
            match tokio::time::timeout(std::time::Duration::from_secs(30), workers).await {
                Ok(Ok(Err(e))) => {
                    tracing::warn!(error = %e, "the workflow worker stopped with an error")
                }
                Err(_) => tracing::warn!("workflow runs still running at shutdown are handed back"),
                _ => {}
            }
        }
        served?;
        self.state.db.clone().close().await.ok();
        tracing::info!("stopped");
        Ok(())
    }
}

/// The event bus: over Redis pub/sub when `redis_url` is set (start-up fails when Redis does
/// not answer), else in process.
async fn connect_bus(config: &Config) -> anyhow::Result<EventBus> {
    let Some(url) = &config.redis_url else {
        return Ok(EventBus::in_process());
    };
    let settings = RedisSettings::new(url.expose(), &config.redis_prefix);
    EventBus::redis(settings).await.with_context(|| {
        format!(
            "cannot connect the event bus to Redis at {}",
            url.redacted()
        )
    })
}

/// The workflows this process knows: housekeeping always, the test ones when configured.
fn registry(config: &Config) -> Registry {
    let mut registry = Registry::new();
    housekeeping::register(&mut registry);
    if config.workflows.test_workflows {
        workflows::testing::register(&mut registry);
    }
    registry
}

/// How often the housekeeping run starts.
const HOUSEKEEPING_PERIOD: std::time::Duration = std::time::Duration::from_secs(3600);

/// The job queue: Redis when `redis_url` is set; else apalis on SQLite in the application's
/// own SQLite database. PostgreSQL without Redis has no durable queue, so it is refused.
async fn connect_queue(
    config: &Config,
    conn: &sea_orm::DatabaseConnection,
) -> anyhow::Result<QueueBackend> {
    if let Some(url) = &config.redis_url {
        let queue = RedisRunQueue::connect(
            url.expose(),
            &config.redis_prefix,
            config.workflows.job_lease,
        )
        .await
        .with_context(|| {
            format!(
                "cannot connect the job queue to Redis at {}",
                url.redacted()
            )
        })?;
        return Ok(QueueBackend::Redis(queue));
    }
    match conn.get_database_backend() {
        sea_orm::DatabaseBackend::Sqlite => Ok(QueueBackend::Sqlite(
            SqliteRunQueue::setup_with_lease(
                conn.get_sqlite_connection_pool(),
                config.workflows.job_lease,
            )
            .await?,
        )),
        _ => anyhow::bail!(
            "the job queue needs Redis with PostgreSQL: set REDIS_URL (only the embedded SQLite database carries its own queue)"
        ),
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c().await.ok();
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received, draining");
}
