//! The `intake` command: `serve` runs a node; `stream`, `push`, `tail` and
//! `read` talk to one over HTTP.

mod api;
mod bench;
mod commands;
mod serve;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

/// mimalloc: measurably cheaper than glibc's allocator on the many small
/// per-request allocations of the HTTP path.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// intake: an HTTP push-ingestion gateway.
#[derive(Debug, Parser)]
#[command(name = "intake", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node.
    Serve(ServeArgs),
    /// Run a cluster manager: the node registry, InLong's getIpList and the
    /// catalog (`intake serve --manager`; it accepts pushes like any node).
    Manager(ServeArgs),
    /// Manage streams.
    Stream {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        command: StreamCommand,
    },
    /// Manage access tokens (`auth = "tokens"`; needs an admin token).
    Token {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Operate a stream's sinks (forwarding to Kafka or NATS).
    Sink {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        command: SinkCommand,
    },
    /// Push NDJSON lines (from FILE or standard input) to a stream, in batches.
    Push {
        #[command(flatten)]
        target: Target,
        /// The stream.
        stream: String,
        /// File of NDJSON lines; `-` or nothing for standard input.
        file: Option<PathBuf>,
        /// Records per request.
        #[arg(long, default_value_t = 1000)]
        batch_records: usize,
        /// Bytes per request, at most (a single longer line is sent alone).
        #[arg(long, default_value_t = 1024 * 1024)]
        batch_bytes: usize,
        /// Send to the nodes this manager lists (least load first, with
        /// retries and failover) instead of `--url`.
        #[arg(long, value_name = "URL")]
        manager: Option<String>,
    },
    /// Print a stream's records as they arrive (one JSON object per line).
    Tail {
        #[command(flatten)]
        target: Target,
        /// The stream.
        stream: String,
        /// `end` (only new records), `beginning`, or an offset.
        #[arg(long, default_value = "end")]
        from: String,
        /// Only this partition.
        #[arg(long)]
        partition: Option<u32>,
    },
    /// Load a stream through one of its faces and measure (see docs/cli.md).
    Bench {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        args: bench::BenchArgs,
    },
    /// Print records of one partition from an offset (one JSON object per line).
    Read {
        #[command(flatten)]
        target: Target,
        /// The stream.
        stream: String,
        /// The partition.
        #[arg(long, default_value_t = 0)]
        partition: u32,
        /// First offset (default: the oldest retained).
        #[arg(long)]
        offset: Option<u64>,
        /// Most records.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

/// Arguments of `intake serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Config file (TOML); every key can also be set by an `INTAKE_*`
    /// environment variable (nested keys with `__`, e.g.
    /// `INTAKE_LIMITS__MAX_BODY_BYTES`).
    #[arg(long, env = "INTAKE_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Address to listen on [default: 0.0.0.0:46802].
    #[arg(long)]
    pub(crate) listen: Option<SocketAddr>,
    /// Data directory [default: ./intake-data].
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// Catalog database URL [default: SQLite in the data directory].
    #[arg(long)]
    pub(crate) catalog: Option<String>,
    /// Create unknown streams on first push.
    #[arg(long)]
    pub(crate) auto_create_streams: bool,
    /// Threads serving HTTP [default: one per CPU core].
    #[arg(long)]
    pub(crate) worker_threads: Option<usize>,
    /// Log lines as `text` or `json` [default: text].
    #[arg(long)]
    pub(crate) log_format: Option<LogFormatArg>,
    /// Also be the cluster's manager: keep the node registry and answer
    /// `getIpList` (`[cluster] manager`).
    #[arg(long)]
    pub(crate) manager: bool,
    /// Join the manager at this URL: heartbeat to it and take streams from
    /// its catalog (`[cluster] join`).
    #[arg(long, value_name = "URL")]
    pub(crate) join: Option<String>,
    /// `HOST:PORT` that clients should dial, when the listen address is not
    /// (`[cluster] advertise`).
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) advertise: Option<String>,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum LogFormatArg {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Which node a client command talks to.
#[derive(Debug, Clone, Args)]
pub(crate) struct Target {
    /// Base URL of the node.
    #[arg(
        long,
        env = "INTAKE_URL",
        default_value = "http://127.0.0.1:46802",
        global = true
    )]
    pub(crate) url: String,
    /// Access token sent as `Authorization: Bearer` (nodes with `auth =
    /// "tokens"`).
    #[arg(long, env = "INTAKE_TOKEN", global = true, hide_env_values = true)]
    pub(crate) token: Option<String>,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make a token; prints it once, with its id.
    Create {
        /// A name for people.
        name: String,
        /// `admin`, `write:STREAM` or `read:STREAM` (STREAM may be `*` or
        /// end in `*`); repeat for several.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Lifetime, e.g. `30d` or `12h`; unset for never.
        #[arg(long)]
        expires_in: Option<humantime::Duration>,
    },
    /// Every token (no secrets).
    List,
    /// Revoke a token by id.
    Revoke {
        /// The token's id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum SinkCommand {
    /// Every sink of a stream: state, lag, sent, errors.
    List {
        /// The stream.
        stream: String,
    },
    /// Stop sending (kept across restarts); records wait in the log.
    Pause {
        /// The stream.
        stream: String,
        /// The sink.
        sink: String,
    },
    /// Send again after a pause.
    Resume {
        /// The stream.
        stream: String,
        /// The sink.
        sink: String,
    },
    /// Forward again (or skip ahead) from an offset in every partition.
    Reset {
        /// The stream.
        stream: String,
        /// The sink.
        sink: String,
        /// The offset (clamped to what each partition retains).
        #[arg(long)]
        to: u64,
    },
}

#[derive(Debug, Subcommand)]
enum StreamCommand {
    /// Create a stream.
    Create {
        /// Name of the stream (not with `--sql`, whose statement names it).
        #[arg(required_unless_present = "sql")]
        name: Option<String>,
        /// An eKuiper `CREATE STREAM ...` (or `CREATE TABLE ...`)
        /// statement instead of the name and flags, sent to eKuiper's
        /// `POST /streams`.
        #[arg(long, conflicts_with_all = ["name", "partitions", "fsync", "key_field", "timestamp_field", "definition"])]
        sql: Option<String>,
        /// Number of partitions.
        #[arg(long)]
        partitions: Option<u32>,
        /// `always`, `interval` or `never`.
        #[arg(long)]
        fsync: Option<String>,
        /// Field whose value becomes the key.
        #[arg(long)]
        key_field: Option<String>,
        /// Field whose value becomes the timestamp.
        #[arg(long)]
        timestamp_field: Option<String>,
        /// A full JSON definition (as for POST /v1/streams) from a file or `-`;
        /// the flags above override its fields.
        #[arg(long)]
        definition: Option<PathBuf>,
    },
    /// List streams.
    List,
    /// Show one stream with its offsets.
    Show {
        /// The stream.
        name: String,
    },
    /// Delete a stream and its data.
    Delete {
        /// The stream.
        name: String,
    },
    /// Pause a stream: every face refuses its records.
    Pause {
        /// The stream.
        name: String,
    },
    /// Resume a paused stream.
    Resume {
        /// The stream.
        name: String,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let (serve_args, command) = match cli.command {
        Command::Serve(args) => (Some(args), None),
        Command::Manager(args) => (
            Some(ServeArgs {
                manager: true,
                ..args
            }),
            None,
        ),
        other => (None, Some(other)),
    };
    if let Some(args) = serve_args {
        return match serve::serve(args) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let Some(command) = command else {
        return std::process::ExitCode::SUCCESS;
    };
    if let Command::Bench { target, args } = command {
        return match bench::run(&target.url, args) {
            Ok(true) => std::process::ExitCode::SUCCESS,
            Ok(false) => std::process::ExitCode::from(2),
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match command {
            Command::Serve(_) | Command::Manager(_) | Command::Bench { .. } => Ok(()),
            Command::Stream { target, command } => {
                let client = api::Client::for_target(&target)?;
                match command {
                    StreamCommand::Create { sql: Some(sql), .. } => {
                        commands::create_stream_sql(&client, &sql).await
                    }
                    StreamCommand::Create {
                        name,
                        partitions,
                        fsync,
                        key_field,
                        timestamp_field,
                        definition,
                        sql: None,
                    } => {
                        let name = name.context("a stream name or --sql is required")?;
                        let flags = commands::CreateFlags {
                            partitions,
                            fsync,
                            key_field,
                            timestamp_field,
                        };
                        commands::create_stream(&client, name, definition, flags).await
                    }
                    StreamCommand::List => commands::list_streams(&client).await,
                    StreamCommand::Show { name } => commands::show_stream(&client, &name).await,
                    StreamCommand::Delete { name } => commands::delete_stream(&client, &name).await,
                    StreamCommand::Pause { name } => {
                        commands::set_state(&client, &name, true).await
                    }
                    StreamCommand::Resume { name } => {
                        commands::set_state(&client, &name, false).await
                    }
                }
            }
            Command::Token { target, command } => {
                let client = api::Client::for_target(&target)?;
                match command {
                    TokenCommand::Create {
                        name,
                        scopes,
                        expires_in,
                    } => commands::create_token(&client, &name, &scopes, expires_in).await,
                    TokenCommand::List => commands::list_tokens(&client).await,
                    TokenCommand::Revoke { id } => commands::revoke_token(&client, &id).await,
                }
            }
            Command::Sink { target, command } => {
                let client = api::Client::for_target(&target)?;
                match command {
                    SinkCommand::List { stream } => commands::list_sinks(&client, &stream).await,
                    SinkCommand::Pause { stream, sink } => {
                        commands::change_sink(&client, &stream, &sink, "pause", None).await
                    }
                    SinkCommand::Resume { stream, sink } => {
                        commands::change_sink(&client, &stream, &sink, "resume", None).await
                    }
                    SinkCommand::Reset { stream, sink, to } => {
                        commands::change_sink(&client, &stream, &sink, "reset", Some(to)).await
                    }
                }
            }
            Command::Push {
                target,
                stream,
                file,
                batch_records,
                batch_bytes,
                manager,
            } => {
                let via = match manager {
                    Some(url) => commands::PushVia::Cluster(
                        intake_client::Client::builder()
                            .manager(url)
                            .strategy(intake_client::Strategy::LeastLoad)
                            .build()
                            .await?,
                    ),
                    None => commands::PushVia::Node(
                        api::Client::for_target(&target)?,
                        uuid::Uuid::new_v4().simple().to_string(),
                        std::sync::atomic::AtomicU64::new(0),
                    ),
                };
                commands::push(&via, &stream, file, batch_records, batch_bytes).await
            }
            Command::Tail {
                target,
                stream,
                from,
                partition,
            } => {
                commands::tail(
                    &api::Client::for_target(&target)?,
                    &stream,
                    &from,
                    partition,
                )
                .await
            }
            Command::Read {
                target,
                stream,
                partition,
                offset,
                limit,
            } => {
                commands::read(
                    &api::Client::for_target(&target)?,
                    &stream,
                    partition,
                    offset,
                    limit,
                )
                .await
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
