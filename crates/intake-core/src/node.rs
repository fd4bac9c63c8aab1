//! A node: the catalog, the open streams and their partitions, and the
//! background work (retention) that keeps them in shape.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use intake_format::RecordCodec;
use intake_format::protobuf::SchemaFiles;

use crate::schemas::SchemaDir;
use intake_format::api::{
    AckMode, FsyncMode, MAX_PARTITIONS, SinkTarget, StreamDefinition, StreamKind, StreamState,
    check_stream_name,
};
use intake_forward::{BrokerClients, SinkRuntime, StreamSinks};
use intake_log::{
    Filesystem, FsyncPolicy, Log, LogMetrics, Partition, PartitionConfig, Retention, StdFilesystem,
};
use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{Scope, TokenError, TokenInfo};
use crate::catalog::Catalog;
use crate::config::CoreConfig;
use crate::error::{Error, Result};
use crate::ingest::{IngestOutcome, IngestRequest, ingest, ingest_keyed};
use crate::stream::Stream;
use crate::table::Table;

/// Most rows a scan table may keep (`retain_size`).
pub(crate) const MAX_RETAIN_SIZE: u64 = 1_000_000;

/// Records read per step when a table is rebuilt from its log.
const REBUILD_READ_RECORDS: usize = 10_000;

/// Feeds every retained record of `logs` to `table`.
fn rebuild(table: Table, logs: &[Arc<Partition>]) -> Result<Table> {
    for (p, log) in logs.iter().enumerate() {
        let mut offset = log.start_offset();
        while offset < log.next_offset() {
            let batch = log.read(offset, REBUILD_READ_RECORDS, 64 * 1024 * 1024)?;
            if batch.records.is_empty() {
                break;
            }
            for r in &batch.records {
                table.apply(p as u32, r.offset, r.timestamp, r.key.as_ref(), &r.value);
            }
            offset = batch.next_offset;
        }
    }
    Ok(table)
}

/// How long a node trusts its copy of the token table.
pub(crate) const TOKEN_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// The token table as last read: by id, the secret's hash and the info.
#[derive(Debug, Default)]
struct TokenCache {
    tokens: HashMap<String, (String, TokenInfo)>,
    read_at: Option<std::time::Instant>,
}

impl TokenCache {
    fn fresh(&self) -> bool {
        self.read_at
            .is_some_and(|at| at.elapsed() < TOKEN_CACHE_TTL)
    }

    fn clear(&mut self) {
        self.read_at = None;
    }
}

/// Default sync period of `fsync = "interval"` streams.
const DEFAULT_FSYNC_INTERVAL_MS: u64 = 1000;

/// Paths (and everything under them) that intake's own routes use on the
/// main listener, so no push path may take them.
pub(crate) const RESERVED_PATHS: &[&str] = &[
    "/v1",
    "/dataproxy",
    "/inlong",
    "/topics",
    "/streams",
    "/tables",
    "/healthz",
    "/readyz",
    "/metrics",
];

/// Every open stream, and the indexes the faces route by.
#[derive(Debug, Default)]
struct Registry {
    streams: BTreeMap<String, Arc<Stream>>,
    inlong: HashMap<(String, String), Arc<Stream>>,
    datahub: HashMap<String, Arc<Stream>>,
    datasource: HashMap<String, Vec<Arc<Stream>>>,
}

impl Registry {
    /// Adds `stream` and its bindings, in place of a stream of its name:
    /// a change costs the stream's own entries, not a pass over every
    /// stream.
    fn insert(&mut self, stream: Arc<Stream>) {
        self.remove(stream.name());
        let def = stream.definition();
        for b in &def.bindings.inlong {
            self.inlong.insert(
                (b.group_id.clone(), b.stream_id.clone()),
                Arc::clone(&stream),
            );
        }
        if let Some(id) = &def.bindings.datahub_id {
            self.datahub.insert(id.clone(), Arc::clone(&stream));
        }
        if let Some(ds) = &def.bindings.datasource {
            let bound = self.datasource.entry(ds.path.clone()).or_default();
            let at = bound.partition_point(|s| s.name() < stream.name());
            bound.insert(at, Arc::clone(&stream));
        }
        self.streams.insert(def.name, stream);
    }

    /// Removes the stream `name` and the bindings it holds; returns it.
    fn remove(&mut self, name: &str) -> Option<Arc<Stream>> {
        let stream = self.streams.remove(name)?;
        let def = stream.definition();
        for b in &def.bindings.inlong {
            let pair = (b.group_id.clone(), b.stream_id.clone());
            if self.inlong.get(&pair).is_some_and(|s| s.name() == name) {
                self.inlong.remove(&pair);
            }
        }
        if let Some(id) = &def.bindings.datahub_id
            && self.datahub.get(id).is_some_and(|s| s.name() == name)
        {
            self.datahub.remove(id);
        }
        if let Some(ds) = &def.bindings.datasource
            && let Some(bound) = self.datasource.get_mut(&ds.path)
        {
            bound.retain(|s| s.name() != name);
            if bound.is_empty() {
                self.datasource.remove(&ds.path);
            }
        }
        Some(stream)
    }

    /// Refuses bindings another stream already holds.
    fn check_bindings(&self, def: &StreamDefinition) -> Result<()> {
        let taken = |what: String, by: &Stream| {
            Err(Error::definition(
                "bindings",
                format!("{what} is already bound to stream {:?}", by.name()),
            ))
        };
        for b in &def.bindings.inlong {
            if let Some(s) = self.inlong.get(&(b.group_id.clone(), b.stream_id.clone()))
                && s.name() != def.name
            {
                return taken(
                    format!("InLong groupId {:?} streamId {:?}", b.group_id, b.stream_id),
                    s,
                );
            }
        }
        if let Some(id) = &def.bindings.datahub_id
            && let Some(s) = self.datahub.get(id)
            && s.name() != def.name
        {
            return taken(format!("DataHubId {id:?}"), s);
        }
        if let Some(ds) = &def.bindings.datasource {
            for s in self.datasource.get(&ds.path).into_iter().flatten() {
                if s.name() == def.name {
                    continue;
                }
                let theirs = s.definition().bindings.datasource;
                let both_shared = ds.shared && theirs.as_ref().is_some_and(|t| t.shared);
                if !both_shared {
                    return taken(
                        format!(
                            "datasource path {:?} (set shared = true on every stream to share it)",
                            ds.path
                        ),
                        s,
                    );
                }
                if theirs.is_some_and(|t| t.method != ds.method) {
                    return Err(Error::definition(
                        "bindings.datasource.method",
                        format!("streams sharing {:?} must use the same method", ds.path),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The handles the node's log and every partition record their figures
/// into, once given (see [`Node::observe_logs`]).
#[derive(Debug, Default)]
struct LogObserver(OnceLock<LogMetrics>);

impl LogObserver {
    fn attach(&self, partitions: &[Arc<Partition>]) {
        if let Some(metrics) = self.0.get() {
            for p in partitions {
                p.set_metrics(metrics.clone());
            }
        }
    }
}

/// A node's core.
#[derive(Debug)]
pub struct Node {
    config: CoreConfig,
    catalog: Catalog,
    /// The journal and commit thread every partition shares.
    log: Log,
    registry: RwLock<Registry>,
    /// Serialises changes to the set of streams.
    changes: tokio::sync::Mutex<()>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// The broker clients, tracker and id every stream's sinks share.
    sinks: SinkRuntime,
    log_observer: LogObserver,
    /// The token table as last read, and when.
    token_cache: parking_lot::Mutex<TokenCache>,
    /// Where `protobuf` streams' `.proto` files are.
    schemas: Arc<dyn SchemaFiles>,
}

/// Checks a definition and fills in what defaults depend on other fields;
/// a `protobuf` stream's message type must compile from `schemas`.
///
/// # Errors
/// [`Error::InvalidDefinition`] naming the field.
pub fn normalize_definition(
    mut def: StreamDefinition,
    schemas: &Arc<dyn SchemaFiles>,
) -> Result<StreamDefinition> {
    check_stream_name(&def.name).map_err(|reason| Error::definition("name", reason))?;
    if def.partitions == 0 || def.partitions > MAX_PARTITIONS {
        return Err(Error::definition(
            "partitions",
            format!("{} is not between 1 and {MAX_PARTITIONS}", def.partitions),
        ));
    }
    match (def.kind, def.retain_size) {
        (StreamKind::Table, None | Some(0)) => {
            return Err(Error::definition(
                "retain_size",
                "a table needs retain_size of at least 1",
            ));
        }
        (StreamKind::Table, Some(n)) if n > MAX_RETAIN_SIZE => {
            return Err(Error::definition(
                "retain_size",
                format!("{n} rows is more than the {MAX_RETAIN_SIZE} a table may keep"),
            ));
        }
        (StreamKind::Table, Some(_)) if !def.format.stores_json() => {
            return Err(Error::definition(
                "format",
                "a table's rows are JSON: use json, ndjson or delimited",
            ));
        }
        (StreamKind::Table, Some(_)) => {}
        (StreamKind::Stream, Some(_)) => {
            return Err(Error::definition(
                "retain_size",
                "only tables have a retain_size",
            ));
        }
        (StreamKind::Stream, None) => {}
    }
    crate::dedup::parse_window(&def.dedup_window)
        .map_err(|reason| Error::definition("dedup_window", reason))?;
    if def.dedup_max_keys == 0 {
        return Err(Error::definition(
            "dedup_max_keys",
            "must be at least 1 (request keys are always held; a short dedup_window holds few)",
        ));
    }
    match (def.fsync, def.fsync_interval_ms) {
        (FsyncMode::Interval, None) => def.fsync_interval_ms = Some(DEFAULT_FSYNC_INTERVAL_MS),
        (FsyncMode::Interval, Some(0)) => {
            return Err(Error::definition("fsync_interval_ms", "must be at least 1"));
        }
        (FsyncMode::Always | FsyncMode::Never, Some(_)) => {
            return Err(Error::definition(
                "fsync_interval_ms",
                "only applies to fsync = \"interval\"",
            ));
        }
        _ => {}
    }
    if let Some(ds) = &mut def.bindings.datasource {
        if !ds.path.starts_with('/') || ds.path.contains(['?', '#']) {
            return Err(Error::definition(
                "bindings.datasource.path",
                format!("{:?} must be a URL path starting with '/'", ds.path),
            ));
        }
        if let Some(prefix) = RESERVED_PATHS
            .iter()
            .find(|p| ds.path == **p || ds.path.starts_with(&format!("{p}/")))
        {
            return Err(Error::definition(
                "bindings.datasource.path",
                format!(
                    "{:?} is taken by intake's own API ({prefix}); choose another path, such as /api/data",
                    ds.path
                ),
            ));
        }
        if ds.path == "/" {
            return Err(Error::definition(
                "bindings.datasource.path",
                "\"/\" is taken by the CKafka face; choose another path, such as /api/data",
            ));
        }
        ds.method = ds.method.to_ascii_uppercase();
        if ds.method != "POST" && ds.method != "PUT" {
            return Err(Error::definition(
                "bindings.datasource.method",
                format!("{:?} is not accepted; use POST or PUT", ds.method),
            ));
        }
    }
    for b in &def.bindings.inlong {
        if b.group_id.is_empty() || b.stream_id.is_empty() {
            return Err(Error::definition(
                "bindings.inlong",
                "group_id and stream_id must not be empty",
            ));
        }
    }
    if def.bindings.datahub_id.as_deref() == Some("") {
        return Err(Error::definition(
            "bindings.datahub_id",
            "must not be empty",
        ));
    }
    let credentials = &def.bindings.datahub_credentials;
    if !credentials.is_empty() && def.bindings.datahub_id.is_none() {
        return Err(Error::definition(
            "bindings.datahub_credentials",
            "need bindings.datahub_id, the DataHub they sign for",
        ));
    }
    for c in credentials {
        if c.secret_id.is_empty() || c.secret_key.is_empty() {
            return Err(Error::definition(
                "bindings.datahub_credentials",
                "secret_id and secret_key must not be empty",
            ));
        }
        if c.secret_key == intake_format::api::REDACTED {
            return Err(Error::definition(
                "bindings.datahub_credentials",
                format!(
                    "the secret_key of {:?} is the placeholder API answers show; give the real key",
                    c.secret_id
                ),
            ));
        }
    }
    check_sinks(&mut def)?;
    RecordCodec::with_schema_files(&def, Arc::clone(schemas)).map_err(|e| match e {
        intake_format::FormatError::InvalidDefinition { field, reason } => {
            Error::InvalidDefinition { field, reason }
        }
        other => Error::definition("definition", other.to_string()),
    })?;
    Ok(def)
}

/// Checks the sinks and the ack policy; fills in `ack_sink` when the
/// stream has exactly one sink.
fn check_sinks(def: &mut StreamDefinition) -> Result<()> {
    let mut names = std::collections::BTreeSet::new();
    for sink in &def.sinks {
        let field = format!("sinks.{}", sink.name);
        let name_ok = !sink.name.is_empty()
            && sink.name.len() <= 100
            && sink
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            && !sink.name.starts_with('.');
        if !name_ok {
            return Err(Error::definition(
                "sinks.name",
                format!(
                    "{:?}: use 1 to 100 letters, digits, '.', '_' or '-', not starting with '.'",
                    sink.name
                ),
            ));
        }
        if !names.insert(sink.name.as_str()) {
            return Err(Error::definition(
                "sinks.name",
                format!("two sinks are named {:?}", sink.name),
            ));
        }
        match &sink.target {
            SinkTarget::Nats { url, subject } => {
                if url.is_empty() || subject.is_empty() || subject.contains(char::is_whitespace) {
                    return Err(Error::definition(
                        &field,
                        "a nats sink needs a url and a subject without spaces",
                    ));
                }
            }
            SinkTarget::Kafka { brokers, topic, .. } => {
                let topic_ok = !topic.is_empty()
                    && topic.len() <= 249
                    && topic
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
                if brokers.is_empty() || !topic_ok {
                    return Err(Error::definition(
                        &field,
                        "a kafka sink needs brokers and a topic of 1 to 249 letters, digits, '.', '_' or '-'",
                    ));
                }
            }
        }
        let zero = [
            ("batch_records", sink.batch_records == Some(0)),
            ("max_lag_bytes", sink.max_lag_bytes == Some(0)),
            (
                "max_in_flight_batches",
                sink.max_in_flight_batches == Some(0),
            ),
            ("max_in_flight_bytes", sink.max_in_flight_bytes == Some(0)),
        ];
        if let Some((name, _)) = zero.iter().find(|(_, is_zero)| *is_zero) {
            return Err(Error::definition(
                &format!("{field}.{name}"),
                format!("{name} must be at least 1"),
            ));
        }
    }
    match def.ack {
        AckMode::Local => {
            if def.ack_sink.is_some() || def.ack_timeout_ms.is_some() {
                return Err(Error::definition(
                    "ack_sink",
                    "ack_sink and ack_timeout_ms only apply to ack = \"sink\"",
                ));
            }
        }
        AckMode::Sink => {
            if def.ack_sink.is_none() && def.sinks.len() == 1 {
                def.ack_sink = Some(def.sinks[0].name.clone());
            }
            let Some(name) = &def.ack_sink else {
                return Err(Error::definition(
                    "ack_sink",
                    "ack = \"sink\" needs ack_sink naming one of the stream's sinks",
                ));
            };
            if !names.contains(name.as_str()) {
                return Err(Error::definition(
                    "ack_sink",
                    format!("{name:?} is not one of the stream's sinks ({names:?})"),
                ));
            }
            if def.ack_timeout_ms == Some(0) {
                return Err(Error::definition("ack_timeout_ms", "must be at least 1"));
            }
        }
    }
    Ok(())
}

impl Node {
    /// Opens the catalog and every stream in it (recovering their logs),
    /// creating or updating the streams the config declares.
    ///
    /// # Errors
    /// Catalog, definition or log errors; a damaged log names file and
    /// position.
    pub async fn open(config: CoreConfig) -> Result<Arc<Self>> {
        Self::open_with_filesystem(config, Arc::new(StdFilesystem)).await
    }

    /// [`Node::open`] on a chosen file system (for fault-injection tests).
    ///
    /// # Errors
    /// As [`Node::open`].
    pub async fn open_with_filesystem(
        config: CoreConfig,
        fs: Arc<dyn Filesystem>,
    ) -> Result<Arc<Self>> {
        config
            .log
            .partition_config()
            .validate()
            .and_then(|()| config.log.log_config().validate())
            .map_err(|e| Error::definition("log", e.to_string()))?;
        std::fs::create_dir_all(&config.data_dir).map_err(|source| Error::Io {
            op: "create",
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let log = Log::open(
            Arc::clone(&fs),
            config.data_dir.clone(),
            config.log.log_config(),
        )?;
        let catalog = Catalog::connect(&config.catalog_url()).await?;
        let schemas: Arc<dyn SchemaFiles> = Arc::new(SchemaDir::new(config.schemas_dir()));
        for declared in &config.streams {
            let declared = normalize_definition(declared.clone(), &schemas)?;
            match catalog.get(&declared.name).await? {
                None => catalog.insert(&declared).await?,
                Some(stored) => {
                    if stored.partitions != declared.partitions {
                        return Err(Error::definition(
                            "partitions",
                            format!(
                                "stream {:?} has {} partitions; the config says {} (partitions cannot change)",
                                declared.name, stored.partitions, declared.partitions
                            ),
                        ));
                    }
                    let mut updated = declared.clone();
                    updated.state = stored.state;
                    if updated != stored {
                        catalog.update(&updated).await?;
                    }
                }
            }
        }
        let tasks = TaskTracker::new();
        let sinks = SinkRuntime {
            clients: BrokerClients::new(),
            tasks: tasks.clone(),
            node_id: config.node_id.clone(),
        };
        let node = Arc::new(Self {
            config,
            catalog,
            log,
            registry: RwLock::new(Registry::default()),
            changes: tokio::sync::Mutex::new(()),
            shutdown: CancellationToken::new(),
            sinks,
            tasks,
            log_observer: LogObserver::default(),
            token_cache: parking_lot::Mutex::new(TokenCache::default()),
            schemas,
        });
        // Every partition first, then the journal's replay into them, and
        // only then the streams' sinks and tables, which read them.
        let mut opened = Vec::new();
        for def in node.catalog.list().await? {
            let def = normalize_definition(def, &node.schemas)?;
            let partitions = node.open_partitions(&def).await?;
            opened.push((def, partitions));
        }
        let log = node.log.clone();
        tokio::task::spawn_blocking(move || log.replay())
            .await
            .map_err(|e| Error::Io {
                op: "replay the journal in",
                path: node.config.data_dir.display().to_string(),
                source: std::io::Error::other(e),
            })??;
        let mut registry = Registry::default();
        for (def, partitions) in opened {
            let stream = node.start_stream(def, partitions).await?;
            registry.insert(Arc::new(stream));
        }
        tracing::info!(streams = registry.streams.len(), "streams opened");
        *node.registry.write() = registry;
        node.spawn_retention();
        if node.config.shares_catalog() {
            node.spawn_catalog_poll();
        }
        Ok(node)
    }

    /// The config the node runs with.
    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    fn stream_dir(&self, name: &str) -> PathBuf {
        self.config.data_dir.join("streams").join(name)
    }

    fn partition_config(&self, def: &StreamDefinition) -> PartitionConfig {
        PartitionConfig {
            fsync: match def.fsync {
                FsyncMode::Always => FsyncPolicy::Always,
                FsyncMode::Never => FsyncPolicy::Never,
                FsyncMode::Interval => FsyncPolicy::Interval(std::time::Duration::from_millis(
                    def.fsync_interval_ms.unwrap_or(DEFAULT_FSYNC_INTERVAL_MS),
                )),
            },
            ..self.config.log.partition_config()
        }
    }

    async fn open_stream(&self, def: StreamDefinition) -> Result<Stream> {
        let partitions = self.open_partitions(&def).await?;
        self.start_stream(def, partitions).await
    }

    /// Opens (or creates) the partitions of `def` on the node's log.
    async fn open_partitions(&self, def: &StreamDefinition) -> Result<Vec<Arc<Partition>>> {
        let dir = self.stream_dir(&def.name);
        let config = self.partition_config(def);
        let log = self.log.clone();
        let count = def.partitions;
        let partitions = tokio::task::spawn_blocking(move || {
            (0..count)
                .map(|p| {
                    log.open_partition(dir.join(p.to_string()), config.clone())
                        .map(Arc::new)
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| Error::Io {
            op: "open partitions of",
            path: def.name.clone(),
            source: std::io::Error::other(e),
        })??;
        self.log_observer.attach(&partitions);
        Ok(partitions)
    }

    /// Makes a stream of `def` on its open `partitions`: its sinks start
    /// from their cursors and its table is rebuilt, so both see every
    /// record the partitions hold (at start, after the journal's replay).
    async fn start_stream(
        &self,
        def: StreamDefinition,
        partitions: Vec<Arc<Partition>>,
    ) -> Result<Stream> {
        let codec = RecordCodec::with_schema_files(&def, Arc::clone(&self.schemas))?;
        let sinks = if def.sinks.is_empty() {
            None
        } else {
            Some(
                StreamSinks::start(
                    &def.name,
                    &self.stream_dir(&def.name).join("sinks"),
                    &def.sinks,
                    &partitions,
                    &self.sinks,
                    self.shutdown.child_token(),
                )
                .await?,
            )
        };
        let table = match (def.kind, def.retain_size) {
            (StreamKind::Table, Some(retain)) => {
                let table = Table::new(
                    usize::try_from(retain).unwrap_or(usize::MAX),
                    def.key_field.is_some(),
                );
                let logs = partitions.clone();
                let table = tokio::task::spawn_blocking(move || rebuild(table, &logs))
                    .await
                    .map_err(|e| Error::Io {
                        op: "rebuild the table of",
                        path: def.name.clone(),
                        source: std::io::Error::other(e),
                    })??;
                tracing::info!(table = %def.name, rows = table.len(), "table rebuilt from the log");
                Some(table)
            }
            _ => None,
        };
        let name = def.name.clone();
        let stream = Stream::new(def, codec, partitions, sinks, table);
        // Keyed requests wait for this; the others need not.
        let dedup = Arc::clone(&stream.dedup);
        let partitions = stream.partitions.clone();
        tokio::task::spawn_blocking(move || match dedup.rebuild(&partitions) {
            Ok(()) => {
                let held = dedup.counts().keys;
                if held > 0 {
                    tracing::info!(stream = %name, keys = held, "request keys rebuilt from the log");
                }
            }
            Err(e) => {
                tracing::error!(stream = %name, error = %e, "request keys could not be rebuilt from the log: retries of requests sent before this start may be stored twice");
                dedup.give_up_rebuild();
            }
        });
        Ok(stream)
    }

    /// Has the log and every partition, of the streams open now and of
    /// those created later, record append and fsync latencies and
    /// group-commit sizes into `metrics`. Only the first call takes effect.
    pub fn observe_logs(&self, metrics: LogMetrics) {
        if self.log_observer.0.set(metrics.clone()).is_err() {
            tracing::debug!("log metrics were already set");
            return;
        }
        self.log.set_metrics(metrics);
        for stream in self.streams() {
            self.log_observer.attach(&stream.partitions);
        }
    }

    /// A stream by name.
    ///
    /// # Errors
    /// [`Error::StreamNotFound`].
    pub fn stream(&self, name: &str) -> Result<Arc<Stream>> {
        self.registry
            .read()
            .streams
            .get(name)
            .cloned()
            .ok_or_else(|| Error::StreamNotFound {
                name: name.to_owned(),
            })
    }

    /// A stream by name, created as a schemaless JSON stream when it does
    /// not exist and `auto_create_streams` is on.
    ///
    /// # Errors
    /// [`Error::StreamNotFound`] when it does not exist and may not be made.
    pub async fn stream_for_push(&self, name: &str) -> Result<Arc<Stream>> {
        self.stream_for_push_as(name, || StreamDefinition::new(name))
            .await
    }

    /// A stream by name, created from `definition` (named `name`) when it
    /// does not exist and `auto_create_streams` is on.
    ///
    /// # Errors
    /// [`Error::StreamNotFound`] when it does not exist and may not be
    /// made; the errors of [`Node::create_stream`].
    pub async fn stream_for_push_as(
        &self,
        name: &str,
        definition: impl FnOnce() -> StreamDefinition,
    ) -> Result<Arc<Stream>> {
        match self.stream(name) {
            Err(Error::StreamNotFound { .. }) if self.config.auto_create_streams => {
                self.create_for_push(definition(), || self.stream(name).ok())
                    .await
            }
            other => other,
        }
    }

    /// The stream a face's binding leads to (`found`: an InLong pair, a
    /// DataHubId), created from `definition`, which binds it, when there is
    /// none and `auto_create_streams` is on. `Ok(None)`: none, and the
    /// option is off.
    ///
    /// # Errors
    /// The errors of [`Node::create_stream`]; [`Error::InvalidDefinition`]
    /// when a stream of the definition's name exists without the binding.
    pub async fn bound_stream_for_push(
        &self,
        found: impl Fn(&Self) -> Option<Arc<Stream>>,
        definition: impl FnOnce() -> StreamDefinition,
    ) -> Result<Option<Arc<Stream>>> {
        if let Some(stream) = found(self) {
            return Ok(Some(stream));
        }
        if !self.config.auto_create_streams {
            return Ok(None);
        }
        self.create_for_push(definition(), || found(self))
            .await
            .map(Some)
    }

    /// Creates `def` for a push that found no stream; when a stream of its
    /// name exists (a concurrent push made it first), `found` must find it.
    async fn create_for_push(
        &self,
        def: StreamDefinition,
        found: impl Fn() -> Option<Arc<Stream>>,
    ) -> Result<Arc<Stream>> {
        let name = def.name.clone();
        // Boxed: the catalog's future is large, and inline it would be
        // copied with every push's future, made or not.
        let create = Box::pin(self.create_stream(def));
        match create.await {
            Ok(stream) => {
                tracing::info!(stream = %name, "stream created by auto_create_streams");
                Ok(stream)
            }
            Err(Error::StreamExists { .. }) => found().ok_or_else(|| {
                Error::definition(
                    "name",
                    format!(
                        "auto_create_streams would make stream {name:?}, but a stream of that name exists without this binding; add the binding to it"
                    ),
                )
            }),
            Err(e) => Err(e),
        }
    }

    /// Every stream, by name.
    pub fn streams(&self) -> Vec<Arc<Stream>> {
        self.registry.read().streams.values().cloned().collect()
    }

    /// The stream an InLong groupId/streamId pair is bound to.
    pub fn stream_by_inlong(&self, group_id: &str, stream_id: &str) -> Option<Arc<Stream>> {
        self.registry
            .read()
            .inlong
            .get(&(group_id.to_owned(), stream_id.to_owned()))
            .cloned()
    }

    /// True when some stream is bound to this InLong group.
    pub fn has_inlong_group(&self, group_id: &str) -> bool {
        self.registry
            .read()
            .inlong
            .keys()
            .any(|(g, _)| g == group_id)
    }

    /// The stream a CKafka DataHubId is bound to.
    pub fn stream_by_datahub(&self, datahub_id: &str) -> Option<Arc<Stream>> {
        self.registry.read().datahub.get(datahub_id).cloned()
    }

    /// The streams bound to an eKuiper-style push path.
    pub fn streams_by_datasource(&self, path: &str) -> Vec<Arc<Stream>> {
        self.registry
            .read()
            .datasource
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    /// Creates a stream: checks the definition, stores it, opens its log.
    ///
    /// # Errors
    /// [`Error::InvalidDefinition`], [`Error::StreamExists`], catalog or
    /// log errors.
    pub async fn create_stream(&self, def: StreamDefinition) -> Result<Arc<Stream>> {
        let def = normalize_definition(def, &self.schemas)?;
        let _guard = self.changes.lock().await;
        {
            let registry = self.registry.read();
            if registry.streams.contains_key(&def.name) {
                return Err(Error::StreamExists { name: def.name });
            }
            registry.check_bindings(&def)?;
        }
        self.clear_orphan_dir(&def.name)?;
        self.catalog.insert(&def).await?;
        let stream = match self.open_stream(def.clone()).await {
            Ok(s) => Arc::new(s),
            Err(e) => {
                self.catalog.delete(&def.name).await.ok();
                return Err(e);
            }
        };
        self.registry.write().insert(Arc::clone(&stream));
        tracing::info!(stream = %def.name, partitions = def.partitions, "stream created");
        Ok(stream)
    }

    /// A directory left by a stream whose catalog row is gone (a delete cut
    /// short) is moved aside, never reused.
    fn clear_orphan_dir(&self, name: &str) -> Result<()> {
        let dir = self.stream_dir(name);
        if !dir.exists() {
            return Ok(());
        }
        let trash = self.config.data_dir.join("trash");
        let io = |op, path: &Path| {
            let path = path.display().to_string();
            move |source| Error::Io { op, path, source }
        };
        std::fs::create_dir_all(&trash).map_err(io("create", &trash))?;
        let stamp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let target = trash.join(format!("{name}-{stamp}"));
        tracing::warn!(from = %dir.display(), to = %target.display(), "moving aside the data of a stream that no longer exists");
        std::fs::rename(&dir, &target).map_err(io("rename", &dir))
    }

    /// Deletes a stream and its data.
    ///
    /// # Errors
    /// [`Error::StreamNotFound`], catalog errors.
    pub async fn delete_stream(&self, name: &str) -> Result<()> {
        let _guard = self.changes.lock().await;
        if !self.registry.read().streams.contains_key(name) {
            return Err(Error::StreamNotFound {
                name: name.to_owned(),
            });
        }
        self.catalog.delete(name).await?;
        let stream = self
            .registry
            .write()
            .remove(name)
            .ok_or_else(|| Error::StreamNotFound {
                name: name.to_owned(),
            })?;
        stream.stop_sinks().await;
        // Forgotten, not only closed: the journal must never give a stream
        // made later under this name the records of this one.
        for p in &stream.partitions {
            p.forget().await.ok();
        }
        let dir = self.stream_dir(name);
        tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&dir))
            .await
            .map_err(|e| Error::Io {
                op: "remove",
                path: name.to_owned(),
                source: std::io::Error::other(e),
            })?
            .map_err(|source| Error::Io {
                op: "remove",
                path: name.to_owned(),
                source,
            })?;
        tracing::info!(stream = name, "stream deleted");
        Ok(())
    }

    /// Replaces a stream's definition, keeping its records: the stream is
    /// closed and reopened under the new definition (pushes in between get
    /// 503 with `Retry-After`). The partition count cannot change; the
    /// state (active or paused) is kept.
    ///
    /// # Errors
    /// [`Error::StreamNotFound`], [`Error::InvalidDefinition`], catalog and
    /// log errors (the old definition is reopened when the new one fails).
    pub async fn replace_stream(&self, def: StreamDefinition) -> Result<Arc<Stream>> {
        let mut def = normalize_definition(def, &self.schemas)?;
        let _guard = self.changes.lock().await;
        let old = self
            .registry
            .read()
            .streams
            .get(&def.name)
            .cloned()
            .ok_or_else(|| Error::StreamNotFound {
                name: def.name.clone(),
            })?;
        let old_def = old.definition();
        if old_def.partitions != def.partitions {
            return Err(Error::definition(
                "partitions",
                format!(
                    "a stream keeps its {} partitions; delete and create it to change them",
                    old_def.partitions
                ),
            ));
        }
        self.registry.read().check_bindings(&def)?;
        RecordCodec::with_schema_files(&def, Arc::clone(&self.schemas))?;
        def.state = old_def.state;
        self.catalog.update(&def).await?;
        old.stop_sinks().await;
        for p in &old.partitions {
            p.close().await.ok();
        }
        let stream = match self.open_stream(def.clone()).await {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::error!(stream = %def.name, error = %e, "the new definition cannot be opened; reopening the old one");
                self.catalog.update(&old_def).await?;
                Arc::new(self.open_stream(old_def).await?)
            }
        };
        self.registry.write().insert(Arc::clone(&stream));
        tracing::info!(stream = %def.name, "stream definition replaced");
        Ok(stream)
    }

    /// Makes a token with `scopes` (expiring at `expires_at_ms` when set);
    /// returns its info and the token text, which is not kept anywhere.
    ///
    /// # Errors
    /// [`Error::InvalidDefinition`] for an empty name or no scope;
    /// [`Error::Catalog`].
    pub async fn create_token(
        &self,
        name: &str,
        scopes: Vec<Scope>,
        expires_at_ms: Option<i64>,
    ) -> Result<(TokenInfo, String)> {
        if name.is_empty() || name.chars().count() > 200 {
            return Err(Error::definition(
                "name",
                "a token needs a name of 1 to 200 characters",
            ));
        }
        if scopes.is_empty() {
            return Err(Error::definition(
                "scopes",
                "a token needs at least one scope: admin, write:STREAM or read:STREAM",
            ));
        }
        let (id, secret, token) = crate::auth::new_token();
        let info = TokenInfo {
            id,
            name: name.to_owned(),
            scopes,
            created_at_ms: crate::ingest::now_ms(),
            expires_at_ms,
        };
        self.catalog
            .insert_token(&info, &crate::auth::hash_secret(&secret))
            .await?;
        self.token_cache.lock().clear();
        tracing::info!(token = %info.id, name = %info.name, "token created");
        Ok((info, token))
    }

    /// Every token, without secrets.
    ///
    /// # Errors
    /// [`Error::Catalog`].
    pub async fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        Ok(self
            .catalog
            .tokens()
            .await?
            .into_iter()
            .map(|(info, _)| info)
            .collect())
    }

    /// Revokes a token at once on this node (other nodes sharing the
    /// catalog within five seconds).
    ///
    /// # Errors
    /// [`Error::TokenNotFound`], [`Error::Catalog`].
    pub async fn revoke_token(&self, id: &str) -> Result<()> {
        if !self.catalog.delete_token(id).await? {
            return Err(Error::TokenNotFound { id: id.to_owned() });
        }
        self.token_cache.lock().clear();
        tracing::info!(token = %id, "token revoked");
        Ok(())
    }

    /// Checks a presented token; its info when valid.
    ///
    /// # Errors
    /// [`Error::Token`] (malformed, unknown, wrong secret, expired);
    /// [`Error::Catalog`] when the catalog cannot be read.
    pub async fn authenticate(&self, token: &str) -> Result<TokenInfo> {
        let (id, secret) = crate::auth::split_token(token)?;
        // One read of the table per TTL at most, also for unknown ids, so
        // random tokens cannot make every request query the catalog.
        let fresh = self.token_cache.lock().fresh();
        if !fresh {
            let all = self.catalog.tokens().await?;
            let mut cache = self.token_cache.lock();
            cache.tokens = all
                .into_iter()
                .map(|(info, hash)| (info.id.clone(), (hash, info)))
                .collect();
            cache.read_at = Some(std::time::Instant::now());
        }
        let (hash, info) = self
            .token_cache
            .lock()
            .tokens
            .get(id)
            .cloned()
            .ok_or(TokenError::Unknown)?;
        if crate::auth::hash_secret(secret) != hash {
            return Err(TokenError::Unknown.into());
        }
        if info
            .expires_at_ms
            .is_some_and(|at| at <= crate::ingest::now_ms())
        {
            return Err(TokenError::Expired.into());
        }
        Ok(info)
    }

    /// Pauses or resumes a stream.
    ///
    /// # Errors
    /// [`Error::StreamNotFound`], catalog errors.
    pub async fn set_state(&self, name: &str, state: StreamState) -> Result<Arc<Stream>> {
        let _guard = self.changes.lock().await;
        let stream = self.stream(name)?;
        let mut def = stream.definition();
        def.state = state;
        self.catalog.update(&def).await?;
        stream.set_state(state);
        tracing::info!(stream = name, ?state, "stream state changed");
        Ok(stream)
    }

    /// Runs one push through the pipeline; returns once every record is
    /// durable (or nothing was written).
    ///
    /// # Errors
    /// [`Error::StreamPaused`], [`Error::Format`] naming the record,
    /// limits, and log errors ([`Error::is_retryable`] tells which are
    /// worth retrying).
    pub async fn ingest(
        &self,
        stream: &Arc<Stream>,
        mut request: IngestRequest,
    ) -> Result<IngestOutcome> {
        if self.shutdown.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        let mut outcome = match request.key.take() {
            Some(key) => ingest_keyed(stream, request, key, &self.config.limits).await?,
            None => ingest(stream, request, &self.config.limits).await?,
        };
        stream.await_sink_ack(&mut outcome).await?;
        Ok(outcome)
    }

    /// Runs one push into several streams (a shared push path): every
    /// stream decodes and checks the request first, and nothing is written
    /// unless all of them accept it; then each appends, and this returns
    /// once all are durable, one outcome per stream in order.
    ///
    /// An append that fails after another stream's succeeded cannot be
    /// undone: the error is returned (so the client retries) and the
    /// streams that did append keep the records.
    ///
    /// # Errors
    /// As [`Node::ingest`], from the first stream that refuses.
    pub async fn ingest_fanout(
        &self,
        streams: &[Arc<Stream>],
        request: IngestRequest,
    ) -> Result<Vec<IngestOutcome>> {
        if self.shutdown.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        let prepared = streams
            .iter()
            .map(|s| crate::ingest::prepare(s, request.clone(), &self.config.limits, None))
            .collect::<Result<Vec<_>>>()?;
        if let Some(key) = &request.key {
            // Every stream accepts it (checked above); each then keeps the
            // key in its own table, so a retry writes only to the streams
            // an earlier attempt missed.
            drop(prepared);
            return futures::future::try_join_all(streams.iter().map(|s| {
                let mut request = request.clone();
                request.key = None;
                async move {
                    let mut outcome =
                        ingest_keyed(s, request, key.clone(), &self.config.limits).await?;
                    s.await_sink_ack(&mut outcome).await?;
                    Ok(outcome)
                }
            }))
            .await;
        }
        futures::future::try_join_all(streams.iter().zip(prepared).map(|(s, p)| async move {
            let mut outcome = crate::ingest::commit(s, p).await?;
            s.await_sink_ack(&mut outcome).await?;
            Ok(outcome)
        }))
        .await
    }

    /// Checks the catalog answers and no partition is poisoned.
    ///
    /// # Errors
    /// What is not ready.
    pub async fn ready(&self) -> Result<()> {
        if self.shutdown.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        self.catalog.ping().await?;
        for stream in self.streams() {
            if let Some(cause) = stream.poisoned() {
                return Err(Error::Log(intake_log::Error::Poisoned {
                    dir: self.stream_dir(stream.name()),
                    cause,
                }));
            }
        }
        Ok(())
    }

    /// True once [`Node::shutdown`] has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    fn spawn_retention(self: &Arc<Self>) {
        let node = Arc::downgrade(self);
        let every = self.config.log.retention_check_interval;
        let cancel = self.shutdown.clone();
        self.tasks.spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.tick().await;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                let Some(node) = node.upgrade() else { return };
                node.enforce_retention().await;
            }
        });
    }

    /// Every definition in the catalog (for a node syncing from a manager).
    ///
    /// # Errors
    /// [`Error::Catalog`].
    pub async fn catalog_definitions(&self) -> Result<Vec<StreamDefinition>> {
        self.catalog.list().await
    }

    /// Brings the open streams in line with `definitions` (read from a
    /// shared catalog or a manager): opens the streams this node lacks,
    /// applies pause and resume, and closes the streams that are gone,
    /// moving their data aside under `data_dir/trash`. With `persist` the
    /// changes are also written to this node's own catalog, so a restart
    /// without the manager serves the same streams. Other changes to an
    /// existing definition take effect when the node restarts.
    ///
    /// # Errors
    /// Catalog or log errors; what was applied before the error stays.
    pub async fn reconcile(&self, definitions: Vec<StreamDefinition>, persist: bool) -> Result<()> {
        let _guard = self.changes.lock().await;
        self.reconcile_locked(definitions, persist).await
    }

    /// [`Node::reconcile`] with a manager's list, persisted, unless the
    /// manager lists no stream while this node has some: that is more
    /// likely a manager started on an empty data directory than a
    /// deliberate deletion of everything, and nothing is changed (`false`).
    /// Checked under the same lock as the changes, so a stream created
    /// here meanwhile is never taken for one the manager deleted.
    ///
    /// # Errors
    /// As [`Node::reconcile`].
    pub async fn reconcile_from_manager(&self, definitions: Vec<StreamDefinition>) -> Result<bool> {
        let _guard = self.changes.lock().await;
        if definitions.is_empty() && !self.registry.read().streams.is_empty() {
            return Ok(false);
        }
        self.reconcile_locked(definitions, true)
            .await
            .map(|()| true)
    }

    async fn reconcile_locked(
        &self,
        definitions: Vec<StreamDefinition>,
        persist: bool,
    ) -> Result<()> {
        let wanted: std::collections::BTreeSet<String> =
            definitions.iter().map(|d| d.name.clone()).collect();
        for def in definitions {
            let existing = self.registry.read().streams.get(&def.name).cloned();
            match existing {
                Some(stream) => {
                    if stream.state() != def.state {
                        if persist {
                            let mut stored = stream.definition();
                            stored.state = def.state;
                            self.catalog.update(&stored).await?;
                        }
                        stream.set_state(def.state);
                        tracing::info!(stream = %def.name, state = ?def.state, "stream state synced");
                    }
                }
                None => {
                    let def = normalize_definition(def, &self.schemas)?;
                    self.clear_orphan_dir(&def.name)?;
                    if persist && self.catalog.get(&def.name).await?.is_none() {
                        self.catalog.insert(&def).await?;
                    }
                    let stream = self.open_stream(def.clone()).await?;
                    tracing::info!(stream = %def.name, "stream synced from the catalog");
                    self.registry.write().insert(Arc::new(stream));
                }
            }
        }
        let gone: Vec<String> = self
            .registry
            .read()
            .streams
            .keys()
            .filter(|name| !wanted.contains(*name))
            .cloned()
            .collect();
        for name in gone {
            if persist {
                self.catalog.delete(&name).await?;
            }
            let Some(stream) = self.registry.write().remove(&name) else {
                continue;
            };
            stream.stop_sinks().await;
            for p in &stream.partitions {
                p.forget().await.ok();
            }
            self.clear_orphan_dir(&name)?;
            tracing::info!(stream = %name, "stream removed: gone from the catalog");
        }
        Ok(())
    }

    /// With a shared catalog, re-reads it every `catalog_poll_interval` so
    /// that streams created, paused or deleted elsewhere reach this node.
    fn spawn_catalog_poll(self: &Arc<Self>) {
        let node = Arc::downgrade(self);
        let every = self.config.catalog_poll_interval;
        let cancel = self.shutdown.clone();
        self.tasks.spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.tick().await;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                let Some(node) = node.upgrade() else { return };
                let synced = match node.catalog.list().await {
                    Ok(defs) => node.reconcile(defs, false).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = synced {
                    tracing::warn!(error = %e, "catalog sync failed; retrying");
                }
            }
        });
    }

    /// Runs retention on every stream that has a policy.
    pub async fn enforce_retention(&self) {
        for stream in self.streams() {
            let def = stream.definition();
            let retention = Retention {
                max_age: def.retention_ms.map(std::time::Duration::from_millis),
                max_bytes: def.retention_bytes,
            };
            if retention == Retention::default() {
                continue;
            }
            for (number, p) in stream.partitions.iter().enumerate() {
                let p = std::sync::Arc::clone(p);
                let name = def.name.clone();
                // Records a sink has not forwarded stay (see StreamSinks).
                let keep_from = stream
                    .sinks()
                    .and_then(|s| s.retention_floor(number as u32));
                let result = tokio::task::spawn_blocking(move || {
                    p.enforce_retention(&retention, keep_from, SystemTime::now())
                })
                .await;
                match result {
                    Ok(Ok(report)) if report.segments > 0 => {
                        tracing::info!(
                            stream = %name, segments = report.segments, bytes = report.bytes,
                            start_offset = report.start_offset, "retention deleted segments"
                        );
                        let keys = stream.dedup_counts().keys;
                        if keys > 0 {
                            // The table keeps its keys, but it is rebuilt
                            // from the segments at start.
                            tracing::warn!(
                                stream = %name, keys, dedup_window = %def.dedup_window,
                                "retention deleted segments while the stream holds request keys: keys of requests in them are forgotten at the next restart, before their dedup_window ends; keep retention longer than dedup_window"
                            );
                        }
                    }
                    Ok(Err(e)) => tracing::error!(stream = %name, error = %e, "retention failed"),
                    _ => {}
                }
            }
        }
    }

    /// Stops background work, then writes and syncs what every partition
    /// has queued, and closes the catalog.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        for stream in self.streams() {
            for p in &stream.partitions {
                if let Err(e) = p.close().await {
                    tracing::error!(stream = stream.name(), error = %e, "final sync failed");
                }
            }
        }
        // Every segment synced: nothing is left for the journal to replay.
        if let Err(e) = self.log.checkpoint().await {
            tracing::error!(error = %e, "final checkpoint failed; the next start replays the journal");
        }
        self.catalog.close().await;
        tracing::info!("log closed");
    }
}
