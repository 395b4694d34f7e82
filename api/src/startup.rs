//! Building and running the server; `main` and the integration tests call the same code.

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use tokio::net::TcpListener;

use crate::{
    auth::{self, keyring::KeyRing, oidc::Oidc},
    bus::EventBus,
    config::Config,
    db, http, maintenance,
    services::{
        data_keys::{self, Keys},
        users,
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
        let keys = Arc::new(Keys::new(master));
        let keyring = KeyRing::load(
            conn.clone(),
            keys.instance_key(),
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
        let state = AppState {
            db: conn,
            config: Arc::new(config),
            bus: EventBus::in_process(),
            keys,
            keyring,
            login_limiter: Default::default(),
            verified_keys: Default::default(),
            oidc,
            statements,
        };
        tokio::spawn(maintenance::run_until_stopped(state.clone()));
        let router = http::router(state.clone());
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
            "autoglue {} listening", crate::VERSION
        );
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown)
            .await
            .context("HTTP server failed")?;
        self.state.db.clone().close().await.ok();
        tracing::info!("stopped");
        Ok(())
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
