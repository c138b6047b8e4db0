//! Assembles the process: logging, the background runtime that owns the
//! state (built by [`crate::bootstrap`]), and the Pingora server with its two
//! listeners (proxy and admin).

use std::sync::Arc;

use pingora::listeners::{L4BufferSettings, ListenerConfig, DEFAULT_L4_WRITE_BUFFER_SIZE};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::listening::Service;

use crate::admin::AdminApp;
use crate::bootstrap;
pub(crate) use crate::bootstrap::StartError;
use crate::config::{Config, LogFormat, StorageConfig};
use crate::proxy::Gateway;
use crate::state::State;

/// Installs the global tracing subscriber (also receiving Pingora's `log`
/// records). `RUST_LOG` overrides the configured level.
pub(crate) fn init_logging(cfg: &crate::config::Logging) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match cfg.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// A plaintext TCP listener whose connections read straight from the socket.
///
/// Pingora puts a 64 KiB read buffer in front of every accepted connection by
/// default, for TLS, whose records are read 16 KiB at a time. Our listeners
/// are plaintext, and Pingora's HTTP/1 and HTTP/2 sessions read into buffers
/// of their own, so that buffer only added a copy of every read and 64 KiB
/// per open connection, zero-filled when the connection is accepted (tokio's
/// `BufReader` initialises it): most of what an idle keep-alive connection or
/// an open SSE stream held (`benches/streams.sh`). Writes keep Pingora's
/// small buffer, which joins a response head with its first body bytes.
fn plain_listener(addr: &str) -> ListenerConfig {
    ListenerConfig::tcp(addr).l4_buffer(L4BufferSettings::new(0, DEFAULT_L4_WRITE_BUFFER_SIZE))
}

/// Builds the state and runs the gateway until a shutdown signal.
///
/// With `upgrade`, the listening sockets come from the running instance
/// (over `server.upgrade_sock`, once it gets SIGQUIT) instead of being bound.
pub fn run(config: Config, upgrade: bool) -> Result<(), StartError> {
    init_logging(&config.logging);
    if upgrade && matches!(config.storage, StorageConfig::Embedded { .. }) {
        // The running instance holds the redb file's lock: this process could
        // not open the store, and the old one would already be told to go.
        return Err(StartError::Other(
            "--upgrade needs storage.backend = \"redis\": the embedded store is held by the running instance".into(),
        ));
    }
    if upgrade && config.server.upgrade_sock.is_none() {
        return Err(StartError::Other(
            "--upgrade needs server.upgrade_sock (the running instance must have it too)".into(),
        ));
    }
    // Pingora retries a busy address forever; an operator wants to hear now.
    // An upgrade receives the sockets the running instance still holds.
    for (name, addr) in if upgrade {
        vec![]
    } else {
        vec![
            ("listen.proxy", config.listen.proxy),
            ("listen.admin", config.listen.admin),
        ]
    } {
        std::net::TcpListener::bind(addr)
            .map_err(|e| StartError::Other(format!("{name} = {addr}: cannot listen: {e}")))?;
    }

    // The state (store connections, caches, background refreshers) lives on
    // its own runtime so it outlives any one Pingora service runtime. The
    // gateway's own routes run there too (proxy::Gateway::serve_local), so it
    // gets as many workers as the proxy, and at least two.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.server.threads.max(2))
        .thread_name("drio-bg")
        .enable_all()
        .build()
        .map_err(|e| StartError::Other(format!("cannot start runtime: {e}")))?;
    let state = runtime.block_on(bootstrap::build(config))?;
    let _ = crate::routes::OPENAPI.set(crate::openapi::serve);
    runtime
        .block_on(bootstrap::start_background(&state))
        .map_err(|e| StartError::Other(format!("cannot subscribe to catalog changes: {e}")))?;

    let server = build_server(state.clone(), runtime.handle().clone(), upgrade);
    tracing::info!(
        proxy = %state.config.listen.proxy,
        admin = %state.config.listen.admin,
        store = state.store.backend(),
        public_url = %state.config.public_url,
        "drio-gateway starting"
    );
    // Keep the background runtime alive for the life of the process.
    let _runtime = runtime;
    server.run(pingora::server::RunArgs {
        shutdown_signal: Box::new(crate::drain::DrainingSignals {
            grace: std::time::Duration::from_secs(state.config.server.grace_period_seconds),
            upgrades: state.config.server.upgrade_sock.is_some(),
        }),
    });
    // Spans of the last requests still queued for the collector.
    crate::telemetry::shutdown();
    Ok(())
}

fn build_server(state: Arc<State>, state_runtime: tokio::runtime::Handle, upgrade: bool) -> Server {
    let cfg = &state.config;
    let conf = ServerConf {
        threads: cfg.server.threads,
        // Our grace period is spent draining before the listeners close
        // (crate::drain). Pingora's "grace period" is the time in-flight
        // requests get once the listeners are closed: its runtimes keep
        // running through it, and their shutdown afterwards cancels
        // whatever is left (its own timeout only covers blocking work).
        grace_period_seconds: Some(cfg.server.graceful_shutdown_timeout_seconds),
        graceful_shutdown_timeout_seconds: Some(1),
        // Unset: never used, SIGQUIT does not hand anything over (crate::drain).
        upgrade_sock: cfg.server.upgrade_sock.as_ref().map_or_else(
            || ServerConf::default().upgrade_sock,
            |p| p.display().to_string(),
        ),
        ..ServerConf::default()
    };
    // Pingora's own flags: only `upgrade` is ours to set (bootstrap then
    // waits for the old process's sockets instead of binding).
    let opt = Opt {
        upgrade,
        daemon: false,
        nocapture: false,
        test: false,
        conf: None,
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        Gateway::new(state.clone(), state_runtime),
        "drio-proxy",
    );
    if cfg.server.h2c {
        // HTTP/2 with prior knowledge (RFC 9113 §3.3) besides HTTP/1.1: Pingora
        // peeks at the first bytes of each connection for the h2 preface.
        // `HttpServerOptions` is non-exhaustive, hence the default then a field.
        let mut options = pingora::apps::HttpServerOptions::default();
        options.h2c = true;
        if let Some(app) = proxy.app_logic_mut() {
            app.server_options = Some(options);
        }
    }
    proxy.add_listener(plain_listener(&cfg.listen.proxy.to_string()));

    let mut admin = Service::new("drio-admin".to_string(), AdminApp::new(state.clone()));
    admin.add_listener(plain_listener(&cfg.listen.admin.to_string()));

    server.add_service(proxy);
    server.add_service(admin);
    server
}
