//! `consumer-auth serve`: open the database, apply pending migrations, serve the Admin API until
//! SIGINT / SIGTERM.

use std::sync::Arc;

use crate::{app, AppState, Store, StoreOptions};

/// The settings of `consumer-auth serve` (flags and environment variables in the CLI).
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub admin_listen: String,
    pub database: String,
    pub admin_token: Option<String>,
    pub body_limit: usize,
    pub store: StoreOptions,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            admin_listen: crate::DEFAULT_ADMIN_LISTEN.into(),
            database: crate::DEFAULT_DATABASE.into(),
            admin_token: None,
            body_limit: crate::DEFAULT_BODY_LIMIT,
            store: StoreOptions::default(),
        }
    }
}

/// Log lines to stderr; `RUST_LOG` overrides the level (default `info`). Requests are not
/// logged: their bodies and paths may carry keys.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).try_init();
}

/// Open the database and apply its pending migrations (`consumer-auth migrate`, and every start).
pub async fn open_migrated(database: &str, options: StoreOptions) -> Result<Store, String> {
    let store = Store::open(database, options).map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| format!("migrations on {}: {e}", store.engine()))?;
    Ok(store)
}

pub async fn serve(config: ServeConfig) -> Result<(), String> {
    init_logging();
    let store = open_migrated(&config.database, config.store.clone()).await?;
    let listener = tokio::net::TcpListener::bind(&config.admin_listen)
        .await
        .map_err(|e| format!("--admin-listen {}: {e}", config.admin_listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(
        listen = %local,
        engine = store.engine(),
        token = config.admin_token.is_some(),
        "consumer-auth Admin API listening"
    );
    let state = AppState {
        store,
        body_limit: config.body_limit,
        admin_token: config.admin_token.map(|t| Arc::from(t.as_str())),
    };
    axum::serve(listener, app(state)).with_graceful_shutdown(shutdown()).await.map_err(|e| e.to_string())
}

async fn shutdown() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
