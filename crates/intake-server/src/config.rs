//! `intake.toml`: every setting of a node. Each field's doc comment is its
//! user documentation (docs/configuration.md is written from them).

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
    /// With a shared catalog (`postgres://...`), how often each node
    /// re-reads it for streams created, paused or deleted elsewhere
    /// (default `2s`).
    #[serde(with = "humantime_serde")]
    pub catalog_poll_interval: Duration,
    /// Membership of a cluster (`[cluster]`).
    pub cluster: ClusterConfig,
    /// Where `protobuf` streams find the `.proto` file their `schema_id`
    /// (`file.Message`) names, and its imports; unset for
    /// `<data_dir>/schemas`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schemas_dir: Option<PathBuf>,
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
    /// HTTPS on every listener (`[tls]`, or eKuiper's `[httpServerTls]`);
    /// unset for plain HTTP.
    #[serde(alias = "httpServerTls", skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::tls::TlsConfig>,
    /// `off` (default: anyone may do anything) or `tokens` (requests need
    /// a token with the fitting scope; see docs/security.md).
    pub auth: crate::auth::AuthMode,
    /// A token with the `admin` scope that is not in the catalog, to make
    /// the first tokens with (`INTAKE_ADMIN_TOKEN`); at least 16 bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    /// Methods of push paths made by eKuiper DDL (`[httppush]`), as
    /// eKuiper's `httppush.yaml`: the default section's, or the one named
    /// by a statement's `CONF_KEY`.
    pub httppush: HttppushConfig,
}

/// `[httppush]`: the settings eKuiper keeps in `httppush.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttppushConfig {
    /// For statements without `CONF_KEY` (`[httppush.default]`).
    pub default: HttppushConfKey,
    /// By `CONF_KEY` name (`[httppush.conf_keys.NAME]`).
    pub conf_keys: std::collections::BTreeMap<String, HttppushConfKey>,
}

/// One `httppush.yaml` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttppushConfKey {
    /// `POST` (default) or `PUT`.
    #[serde(default = "post")]
    pub method: String,
}

impl Default for HttppushConfKey {
    fn default() -> Self {
        Self { method: post() }
    }
}

fn post() -> String {
    "POST".to_owned()
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
            catalog_poll_interval: Duration::from_secs(2),
            cluster: ClusterConfig::default(),
            schemas_dir: None,
            auto_create_streams: false,
            limits: Limits::default(),
            log: LogSettings::default(),
            worker_threads: None,
            streams: Vec::new(),
            log_format: LogFormat::Text,
            tls: None,
            httppush: HttppushConfig::default(),
            auth: crate::auth::AuthMode::Off,
            admin_token: None,
        }
    }
}

/// Cluster membership (`[cluster]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Serve the manager API on this node: the node registry
    /// (`/v1/cluster/...`) and InLong Manager's `getIpList` and heartbeat
    /// report (`intake manager` and `intake serve --manager` set it).
    pub manager: bool,
    /// Manager URL to heartbeat to (`http://HOST:PORT`); unset for a
    /// standalone node. A joined node also takes its streams from the
    /// manager's catalog.
    pub join: Option<String>,
    /// `HOST:PORT` clients should dial, reported in heartbeats; unset for
    /// the listen address (which must then not be `0.0.0.0`).
    pub advertise: Option<String>,
    /// How often a node heartbeats, and how often a joined node syncs its
    /// streams from the manager (default `5s`). The manager counts a node
    /// offline after three missed intervals.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// This node's name in ids its sinks send (`NODE/STREAM/P/O`), 1 to
    /// 64 of `A-Z a-z 0-9 . _ -`. Unset: none on a standalone node; on a
    /// node that joins a manager or shares a catalog, a random id made once
    /// and kept in `DATA_DIR/node_id`.
    pub node_id: Option<String>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            manager: false,
            join: None,
            advertise: None,
            heartbeat_interval: Duration::from_secs(5),
            node_id: None,
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
    /// Largest body after `Content-Encoding: gzip | deflate | zstd` is
    /// undone, in bytes (default 64 MiB). Decoding streams and stops at the
    /// limit, so a decompression bomb costs at most this much memory and
    /// gets 413.
    pub max_decompressed_bytes: usize,
    /// Deepest nesting of JSON arrays and objects in a record (default 64,
    /// at most 128); deeper gets 400 `json_too_deep`.
    pub max_json_depth: usize,
    /// Most header lines in one request (default 100); more gets 431.
    pub max_headers: usize,
    /// Largest request head (request line and headers) in bytes (default
    /// 64 KiB, at least 8192); larger gets 431.
    pub max_header_bytes: usize,
    /// A client must send the request head, and then the body, each within
    /// this time (default "30s"). A slow body gets 408; a connection that
    /// does not finish its head in time is closed, and so is a keep-alive
    /// connection idle this long.
    #[serde(with = "humantime_serde")]
    pub request_read_timeout: Duration,
    /// After `body_rate_grace`, a body must have arrived at this many bytes
    /// per second on average since it began (default 240, as ASP.NET
    /// Kestrel's; 0 turns it off). A slower one gets 408
    /// `request_body_too_slow` and its connection is closed, so a client
    /// trickling bodies holds a request slot for seconds, not for
    /// `request_read_timeout`.
    pub min_body_bytes_per_second: u64,
    /// How long a body may take before `min_body_bytes_per_second` applies
    /// (default "5s", at least "1s" while that rate is set).
    #[serde(with = "humantime_serde")]
    pub body_rate_grace: Duration,
    /// Open connections at most (default 10000); one more is answered 503
    /// with Retry-After and closed.
    pub max_connections: usize,
    /// Push requests per second one stream accepts, over all faces and
    /// clients (default unset: no limit); more get 429 with Retry-After.
    /// Bursts of up to one second's worth pass.
    pub stream_requests_per_second: Option<u32>,
    /// Requests per second one token may make, over all faces and paths,
    /// with `auth = "tokens"` (default unset: no limit); more get 429 with
    /// Retry-After. Bursts of up to one second's worth pass.
    pub token_requests_per_second: Option<u32>,
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
            max_decompressed_bytes: 64 * 1024 * 1024,
            max_json_depth: ingest.max_json_depth,
            max_headers: 100,
            max_header_bytes: 64 * 1024,
            request_read_timeout: Duration::from_secs(30),
            min_body_bytes_per_second: 240,
            body_rate_grace: Duration::from_secs(5),
            max_connections: 10_000,
            stream_requests_per_second: None,
            token_requests_per_second: None,
            max_concurrent_requests: 4096,
            request_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(30),
            max_read_records: 10_000,
            max_read_bytes: 4 * 1024 * 1024,
        }
    }
}

/// serde_json refuses deeper documents whatever the setting.
const MAX_JSON_DEPTH: usize = 128;

/// hyper's smallest read buffer.
const MIN_HEADER_BYTES: usize = 8192;

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
        positive(
            "limits.max_decompressed_bytes",
            self.limits.max_decompressed_bytes,
        )?;
        positive("limits.max_json_depth", self.limits.max_json_depth)?;
        positive("limits.max_headers", self.limits.max_headers)?;
        positive("limits.max_connections", self.limits.max_connections)?;
        for (name, rate) in [
            (
                "limits.stream_requests_per_second",
                self.limits.stream_requests_per_second,
            ),
            (
                "limits.token_requests_per_second",
                self.limits.token_requests_per_second,
            ),
        ] {
            if rate == Some(0) {
                return Err(InvalidParameter {
                    name,
                    reason: "must be at least 1 (leave it unset for no limit)".into(),
                });
            }
        }
        if self.limits.max_json_depth > MAX_JSON_DEPTH {
            return Err(InvalidParameter {
                name: "limits.max_json_depth",
                reason: format!("at most {MAX_JSON_DEPTH} (the JSON parser's own bound)"),
            });
        }
        if self.limits.max_header_bytes < MIN_HEADER_BYTES {
            return Err(InvalidParameter {
                name: "limits.max_header_bytes",
                reason: format!("must be at least {MIN_HEADER_BYTES}"),
            });
        }
        if self.limits.min_body_bytes_per_second > 0
            && self.limits.body_rate_grace < Duration::from_secs(1)
        {
            return Err(InvalidParameter {
                name: "limits.body_rate_grace",
                reason: "must be at least 1s while limits.min_body_bytes_per_second is set (a body's first bytes need time to come)".into(),
            });
        }
        if self.limits.request_read_timeout.is_zero() {
            return Err(InvalidParameter {
                name: "limits.request_read_timeout",
                reason: "must be longer than zero".into(),
            });
        }
        positive("limits.max_read_bytes", self.limits.max_read_bytes)?;
        if self.limits.request_timeout.is_zero() {
            return Err(InvalidParameter {
                name: "limits.request_timeout",
                reason: "must be longer than zero".into(),
            });
        }
        for (name, conf) in std::iter::once(("default", &self.httppush.default)).chain(
            self.httppush
                .conf_keys
                .iter()
                .map(|(name, conf)| (name.as_str(), conf)),
        ) {
            if !conf.method.eq_ignore_ascii_case("POST") && !conf.method.eq_ignore_ascii_case("PUT")
            {
                return Err(InvalidParameter {
                    name: "httppush.conf_keys",
                    reason: format!("{name}: method {:?} is not POST or PUT", conf.method),
                });
            }
        }
        if self.admin_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err(InvalidParameter {
                name: "admin_token",
                reason: "must be at least 16 bytes".into(),
            });
        }
        if let Some(id) = &self.cluster.node_id {
            intake_core::check_node_id(id).map_err(|reason| InvalidParameter {
                name: "cluster.node_id",
                reason,
            })?;
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
            catalog_poll_interval: self.catalog_poll_interval,
            auto_create_streams: self.auto_create_streams,
            log: self.log.clone(),
            limits: IngestLimits {
                max_records_per_request: self.limits.max_records_per_request,
                max_record_bytes: self.limits.max_record_bytes,
                max_json_depth: self.limits.max_json_depth,
            },
            streams: self.streams.clone(),
            node_id: self.cluster.node_id.clone(),
            schemas_dir: self.schemas_dir.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_roundtrips_and_is_valid() {
        let config = Config::default();
        config.validate().unwrap();
        let text = toml::to_string(&config).unwrap();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn log_keys_reach_the_log() {
        let config: Config = toml::from_str(
            "[log]\njournal_file_bytes = 1048576\nmax_group_bytes = 65536\ndirect_write_bytes = 0\n",
        )
        .unwrap();
        let log = config.log.log_config();
        assert_eq!(log.journal_file_bytes, 1 << 20);
        assert_eq!(log.max_group_bytes, 1 << 16);
        assert_eq!(log.direct_write_bytes, 0, "every append skips the journal");
        let defaults = Config::default().log.log_config();
        assert_eq!(defaults, intake_log::LogConfig::default());
    }

    #[test]
    fn limits_are_checked_at_their_edges() {
        let with = |f: fn(&mut Limits)| {
            let mut config = Config::default();
            f(&mut config.limits);
            config.validate().map_err(|e| e.name)
        };
        assert_eq!(with(|l| l.max_json_depth = 128), Ok(()));
        assert_eq!(
            with(|l| l.max_json_depth = 129),
            Err("limits.max_json_depth")
        );
        assert_eq!(with(|l| l.max_header_bytes = 8192), Ok(()));
        assert_eq!(
            with(|l| l.max_header_bytes = 8191),
            Err("limits.max_header_bytes")
        );
        assert_eq!(with(|l| l.max_connections = 1), Ok(()));
        assert_eq!(
            with(|l| l.max_connections = 0),
            Err("limits.max_connections")
        );
        assert_eq!(with(|l| l.stream_requests_per_second = Some(1)), Ok(()));
        assert_eq!(
            with(|l| l.token_requests_per_second = Some(0)),
            Err("limits.token_requests_per_second")
        );
        assert_eq!(
            with(|l| l.stream_requests_per_second = Some(0)),
            Err("limits.stream_requests_per_second")
        );
        assert_eq!(
            with(|l| l.request_read_timeout = Duration::ZERO),
            Err("limits.request_read_timeout")
        );
        assert_eq!(with(|l| l.body_rate_grace = Duration::from_secs(1)), Ok(()));
        assert_eq!(
            with(|l| l.body_rate_grace = Duration::from_millis(999)),
            Err("limits.body_rate_grace")
        );
        assert_eq!(
            with(|l| {
                l.body_rate_grace = Duration::ZERO;
                l.min_body_bytes_per_second = 0;
            }),
            Ok(())
        );
        assert_eq!(
            with(|l| l.max_decompressed_bytes = 0),
            Err("limits.max_decompressed_bytes")
        );
    }
}
