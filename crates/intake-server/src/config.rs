//! `intake.toml`: every setting of a node. Each field's doc comment is its
//! user documentation (the README's reference is written from them).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use intake_core::{CoreConfig, IngestLimits, LogSettings};
use intake_format::api::StreamDefinition;
use serde::{Deserialize, Serialize};

/// The whole configuration of a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of the main listener (native API, every face, health).
    pub listen: SocketAddr,
    /// Address of the push listener, which serves only the streams' own
    /// push paths (eKuiper httppush `DATASOURCE`); unset (the default) for
    /// none. eKuiper's own default is `0.0.0.0:10081`. The main listener
    /// serves those paths too.
    pub push_listen: Option<SocketAddr>,
    /// Root of the data directory (logs, embedded catalog).
    pub data_dir: PathBuf,
    /// Catalog database URL; unset for the embedded SQLite file
    /// `<data_dir>/catalog.db`.
    pub catalog: Option<String>,
    /// Create a schemaless JSON stream when a push names an unknown one.
    pub auto_create_streams: bool,
    /// Request limits.
    pub limits: Limits,
    /// Log tuning.
    pub log: LogSettings,
    /// Threads serving HTTP; unset for one per CPU core. On a machine
    /// that also runs the load (or another busy process), fewer threads
    /// than cores leave room for the log writers and the kernel.
    pub worker_threads: Option<usize>,
    /// Streams to create (or update) at start, same fields as
    /// `POST /v1/streams`.
    pub streams: Vec<StreamDefinition>,
    /// How log lines on stderr look: `text` (default, for people) or
    /// `json` (one JSON object per line, with the span fields, for log
    /// collectors).
    pub log_format: LogFormat,
}

/// The shape of the node's log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 46802)),
            push_listen: None,
            data_dir: PathBuf::from("./intake-data"),
            catalog: None,
            auto_create_streams: false,
            limits: Limits::default(),
            log: LogSettings::default(),
            worker_threads: None,
            streams: Vec::new(),
            log_format: LogFormat::Text,
        }
    }
}

/// Limits on requests (`[limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body on push routes, in bytes (default 8 MiB);
    /// larger ones get 413.
    pub max_body_bytes: usize,
    /// Largest body on admin routes (stream definitions), in bytes
    /// (default 1 MiB).
    pub max_admin_body_bytes: usize,
    /// Most records one request may carry (default 100000); more gets 413.
    pub max_records_per_request: usize,
    /// Largest single record in bytes (default 1 MiB); larger gets 413.
    pub max_record_bytes: usize,
    /// Requests handled at once; more are answered 503 with Retry-After at
    /// once rather than queued (default 4096).
    pub max_concurrent_requests: usize,
    /// A request not answered within this time gets 408 (default "30s").
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// On SIGTERM/SIGINT, in-flight requests get this long to finish
    /// (default "30s").
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Records one read returns at most (default 10000).
    pub max_read_records: usize,
    /// Payload bytes one read returns at most (default 4 MiB; at least one
    /// record is always returned).
    pub max_read_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        let ingest = IngestLimits::default();
        Self {
            max_body_bytes: 8 * 1024 * 1024,
            max_admin_body_bytes: 1024 * 1024,
            max_records_per_request: ingest.max_records_per_request,
            max_record_bytes: ingest.max_record_bytes,
            max_concurrent_requests: 4096,
            request_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(30),
            max_read_records: 10_000,
            max_read_bytes: 4 * 1024 * 1024,
        }
    }
}

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid parameter {name}: {reason}")]
pub struct InvalidParameter {
    /// The key, as written in `intake.toml`.
    pub name: &'static str,
    /// Why it is refused.
    pub reason: String,
}

impl Config {
    /// Checks values that serde cannot.
    ///
    /// # Errors
    /// [`InvalidParameter`] naming the key.
    pub fn validate(&self) -> Result<(), InvalidParameter> {
        let positive = |name, v: usize| {
            if v == 0 {
                Err(InvalidParameter {
                    name,
                    reason: "must be at least 1".into(),
                })
            } else {
                Ok(())
            }
        };
        if let Some(threads) = self.worker_threads {
            positive("worker_threads", threads)?;
        }
        positive("limits.max_body_bytes", self.limits.max_body_bytes)?;
        positive(
            "limits.max_admin_body_bytes",
            self.limits.max_admin_body_bytes,
        )?;
        positive(
            "limits.max_records_per_request",
            self.limits.max_records_per_request,
        )?;
        positive("limits.max_record_bytes", self.limits.max_record_bytes)?;
        positive(
            "limits.max_concurrent_requests",
            self.limits.max_concurrent_requests,
        )?;
        positive("limits.max_read_records", self.limits.max_read_records)?;
        positive("limits.max_read_bytes", self.limits.max_read_bytes)?;
        if self.limits.request_timeout.is_zero() {
            return Err(InvalidParameter {
                name: "limits.request_timeout",
                reason: "must be longer than zero".into(),
            });
        }
        self.log
            .partition_config()
            .validate()
            .map_err(|e| InvalidParameter {
                name: "log",
                reason: e.to_string(),
            })
    }

    /// The core's share of the settings.
    pub fn core(&self) -> CoreConfig {
        CoreConfig {
            data_dir: self.data_dir.clone(),
            catalog: self.catalog.clone(),
            auto_create_streams: self.auto_create_streams,
            log: self.log.clone(),
            limits: IngestLimits {
                max_records_per_request: self.limits.max_records_per_request,
                max_record_bytes: self.limits.max_record_bytes,
            },
            streams: self.streams.clone(),
        }
    }
}
