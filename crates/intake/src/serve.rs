//! `intake serve`: load the config, open the node, listen, and shut down
//! cleanly on SIGINT or SIGTERM.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use std::sync::Arc;

use intake_core::{Node, NodeRegistry};
use intake_server::{AppState, AuthMode, Config, LogFormat};
use tracing_subscriber::EnvFilter;

use crate::{LogFormatArg, ServeArgs};

/// Environment variables that are not config keys: the client commands'
/// `INTAKE_URL` and `INTAKE_TOKEN` (exported in a shell that also starts a
/// node), the config file's path, the log filter.
const NOT_CONFIG: &[&str] = &["config", "url", "token", "log"];

/// The config from defaults, the file, `INTAKE_*` variables and flags, in
/// that order of precedence (last wins).
pub(crate) fn load_config(args: &ServeArgs) -> anyhow::Result<Config> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    if let Some(path) = &args.config {
        anyhow::ensure!(
            Path::new(path).exists(),
            "config file {} does not exist",
            path.display()
        );
        figment = figment.merge(Toml::file(path));
    }
    figment = figment.merge(Env::prefixed("INTAKE_").ignore(NOT_CONFIG).split("__"));
    let mut config: Config = figment.extract().context("invalid configuration")?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(catalog) = &args.catalog {
        config.catalog = Some(catalog.clone());
    }
    if args.auto_create_streams {
        config.auto_create_streams = true;
    }
    if let Some(threads) = args.worker_threads {
        config.worker_threads = Some(threads);
    }
    if args.manager {
        config.cluster.manager = true;
    }
    if let Some(join) = &args.join {
        config.cluster.join = Some(join.clone());
    }
    if let Some(advertise) = &args.advertise {
        config.cluster.advertise = Some(advertise.clone());
    }
    match args.log_format {
        Some(LogFormatArg::Text) => config.log_format = LogFormat::Text,
        Some(LogFormatArg::Json) => config.log_format = LogFormat::Json,
        None => {}
    }
    config.validate()?;
    Ok(config)
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_env("INTAKE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().with_current_span(true).init(),
    }
}

/// Raises the soft limit on open files to the hard one: every partition
/// keeps its active segment open, so thousands of streams need more than
/// the soft limit of 1024 most systems start a process with.
fn raise_open_files_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled, so a signal sent right after
/// `listening on` is printed is not missed.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    let interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    async move {
        let wait = |s: std::io::Result<tokio::signal::unix::Signal>, name: &'static str| async move {
            match s {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for {name}");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            () = wait(terminate, "SIGTERM") => {}
            () = wait(interrupt, "SIGINT") => {}
        }
    }
}

/// Runs a node until SIGINT or SIGTERM.
pub(crate) fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = load_config(&args)?;
    init_tracing(config.log_format);
    raise_open_files_limit();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all().thread_name("intake-worker");
    if let Some(threads) = config.worker_threads {
        runtime.worker_threads(threads);
    }
    runtime
        .build()
        .context("cannot start the runtime")?
        .block_on(run(config))
}

async fn run(mut config: Config) -> anyhow::Result<()> {
    // Certificate problems stop the start before any data is opened.
    let tls = match &config.tls {
        Some(tls) => Some(tls.acceptor().context("cannot set up TLS")?),
        None => None,
    };
    let clustered = config.cluster.join.is_some() || config.core().shares_catalog();
    if clustered && config.cluster.node_id.is_none() {
        let id = intake_core::stored_node_id(&config.data_dir)
            .with_context(|| format!("cannot keep a node id in {}", config.data_dir.display()))?;
        config.cluster.node_id = Some(id);
    }
    if let Some(id) = &config.cluster.node_id {
        tracing::info!(node_id = %id, "sinks name records NODE/STREAM/PARTITION/OFFSET");
    }
    let node = Node::open(config.core())
        .await
        .with_context(|| format!("cannot open the node in {}", config.data_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let mut state = AppState::new(node, config.limits)
        .with_httppush(config.httppush.clone())
        .with_auth(config.auth, config.admin_token.clone());
    match config.auth {
        AuthMode::Tokens => {
            tracing::info!("auth = \"tokens\": requests need a token with the fitting scope")
        }
        AuthMode::Off => {
            let open: Vec<String> = std::iter::once(addr)
                .chain(config.push_listen)
                .filter(|a| !a.ip().is_loopback())
                .map(|a| a.to_string())
                .collect();
            if !open.is_empty() {
                tracing::warn!(
                    listeners = %open.join(", "),
                    "auth = \"off\" on a listener beyond loopback: anyone who reaches it may write, read and manage streams; set auth = \"tokens\""
                );
            }
        }
    }
    if let Some(acceptor) = tls {
        state = state.with_tls(acceptor);
        tracing::info!(
            client_certificates = config
                .tls
                .as_ref()
                .is_some_and(|t| t.client_ca_file.is_some()),
            "serving HTTPS (HTTP/2 and HTTP/1.1 by ALPN)"
        );
    }
    if config.cluster.manager {
        let interval = config.cluster.heartbeat_interval.as_millis() as u64;
        state = state.with_manager(Arc::new(NodeRegistry::new(interval)));
        tracing::info!("this node is the cluster manager");
    }
    let membership = match &config.cluster.join {
        Some(manager) => {
            let advertise = match &config.cluster.advertise {
                Some(a) => a.clone(),
                None if addr.ip().is_unspecified() => anyhow::bail!(
                    "--join needs --advertise HOST:PORT when listening on {addr}: clients cannot dial an unspecified address"
                ),
                None => addr.to_string(),
            };
            tracing::info!(%manager, %advertise, "joining the cluster");
            Some(intake_server::spawn_membership(
                state.clone(),
                manager.clone(),
                advertise,
                config.cluster.heartbeat_interval,
            ))
        }
        None => None,
    };
    let shutdown = shutdown_signal();
    if let Some(push_addr) = config.push_listen {
        let push = tokio::net::TcpListener::bind(push_addr)
            .await
            .with_context(|| format!("cannot listen on {push_addr} (push_listen)"))?;
        let push_addr = push.local_addr()?;
        tracing::info!(%push_addr, "push listener for the streams' own paths");
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(e) = intake_server::serve_push(push, state).await {
                tracing::error!(error = %e, "push listener failed");
            }
        });
    }
    println!("listening on {addr}");
    std::io::stdout().flush().ok();
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "listening");
    intake_server::run(listener, state, shutdown).await?;
    if let Some(task) = membership {
        task.abort();
    }
    tracing::info!("stopped");
    Ok(())
}
