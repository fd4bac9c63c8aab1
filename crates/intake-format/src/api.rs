//! The serde types of intake's native HTTP API, shared by the server, the
//! CLI and the Rust SDK. Their JSON shapes are a contract: fields may be
//! added, never renamed or removed.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{Object, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::schema::Field;

/// Longest accepted stream name.
pub const MAX_STREAM_NAME_LEN: usize = 200;
/// Most partitions a stream may have.
pub const MAX_PARTITIONS: u32 = 1024;

/// What a stream is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    /// An append-only stream of records.
    #[default]
    Stream,
    /// A scan table: the stream, plus the latest `retain_size` rows kept for
    /// queries.
    Table,
}

/// How a request body or a pushed item is decoded into records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JSON: an object (one record) or an array (one record per element).
    #[default]
    Json,
    /// Newline-delimited JSON, one record per line.
    Ndjson,
    /// Delimited text (CSV-like), values mapped to the schema's fields in
    /// order.
    Delimited,
    /// Opaque bytes: the whole body (or pushed item) is one record.
    Binary,
    /// Protocol Buffers, message type given by `schema_id`.
    Protobuf,
}

impl Format {
    /// True when stored values are JSON text (served as JSON, not base64):
    /// JSON records as sent, delimited lines and protobuf messages as the
    /// objects they map to.
    pub fn stores_json(self) -> bool {
        matches!(
            self,
            Self::Json | Self::Ndjson | Self::Delimited | Self::Protobuf
        )
    }

    /// True when a request body may be JSON or NDJSON framed (by its
    /// content type); other formats take the body as it is.
    pub fn takes_json_bodies(self) -> bool {
        matches!(self, Self::Json | Self::Ndjson)
    }
}

/// Durability of a stream's acknowledged records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FsyncMode {
    /// fdatasync before every acknowledgement (group-committed).
    #[default]
    Always,
    /// Acknowledge after the write; fdatasync every `fsync_interval_ms`.
    Interval,
    /// Acknowledge after the write; the OS flushes when it likes.
    Never,
}

/// Whether a stream accepts records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StreamState {
    /// Accepting records.
    #[default]
    Active,
    /// Refusing records on every face, each in its own shape.
    Paused,
}

/// An InLong `groupId`/`streamId` pair routed to a stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InlongBinding {
    /// InLong `groupId`.
    #[schema(min_length = 1)]
    pub group_id: String,
    /// InLong `streamId`.
    #[schema(min_length = 1)]
    pub stream_id: String,
}

/// An eKuiper-style push path served for a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasourceBinding {
    /// URL path, e.g. `/api/data`; not one of intake's own paths.
    #[schema(pattern = r"^/[^?#]*$", example = "/api/data")]
    pub path: String,
    /// `POST` or `PUT` (any case).
    #[serde(default = "default_method")]
    #[schema(pattern = "^([Pp][Oo][Ss][Tt]|[Pp][Uu][Tt])$")]
    pub method: String,
    /// Several streams may bind the same path when every one of them says
    /// `shared`; each then gets every record.
    #[serde(default)]
    pub shared: bool,
}

fn default_method() -> String {
    "POST".to_owned()
}

/// A Tencent Cloud API key pair a CKafka DataHub binding accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DatahubCredential {
    /// The SecretId clients sign with (sent in the clear).
    #[schema(min_length = 1)]
    pub secret_id: String,
    /// The SecretKey; API answers show [`REDACTED`] in its place.
    #[schema(min_length = 1)]
    pub secret_key: String,
}

/// What API answers show in place of a secret.
pub const REDACTED: &str = "<redacted>";

/// The faces a stream is reachable through, besides the native API and the
/// REST Proxy (whose topic is the stream name).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Bindings {
    /// InLong DataProxy group/stream pairs.
    #[serde(default)]
    pub inlong: Vec<InlongBinding>,
    /// CKafka DataHub access point id.
    #[serde(default)]
    #[schema(min_length = 1)]
    pub datahub_id: Option<String>,
    /// SecretId/SecretKey pairs whose TC3-HMAC-SHA256 signature the CKafka
    /// face accepts for `datahub_id` (several, to rotate keys). When set,
    /// every `SendMessage` to it must be signed by one of them (or carry a
    /// token with write scope under `auth = "tokens"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datahub_credentials: Vec<DatahubCredential>,
    /// eKuiper httppush path.
    #[serde(default)]
    pub datasource: Option<DatasourceBinding>,
}

impl Bindings {
    /// True when no face binding is set.
    pub fn is_empty(&self) -> bool {
        self.inlong.is_empty() && self.datahub_id.is_none() && self.datasource.is_none()
    }
}

/// A stream's definition: `POST /v1/streams` takes it (only `name` is
/// required) and every read of a stream returns it with defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamDefinition {
    /// Name: letters, digits, `.`, `_`, `-`; starting with a letter or digit.
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$", example = "demo")]
    pub name: String,
    /// Number of partitions (1 to 1024).
    #[serde(default = "default_partitions")]
    #[schema(minimum = 1, maximum = 1024, default = 1)]
    pub partitions: u32,
    /// `stream` or `table`.
    #[serde(default)]
    pub kind: StreamKind,
    /// Rows a table keeps (required for tables).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub retain_size: Option<u64>,
    /// Record format.
    #[serde(default)]
    pub format: Format,
    /// Field separator of the delimited format.
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
    /// Protobuf message type as `file.Message`.
    #[serde(default)]
    pub schema_id: Option<String>,
    /// Fields of structured records; `null` for schemaless streams.
    #[serde(default)]
    pub schema: Option<Vec<Field>>,
    /// Refuse (rather than coerce) records that do not match the schema.
    #[serde(default)]
    pub strict_validation: bool,
    /// Field whose value becomes the record key (and picks the partition).
    #[serde(default)]
    pub key_field: Option<String>,
    /// Field whose value becomes the record timestamp.
    #[serde(default)]
    pub timestamp_field: Option<String>,
    /// Format of `timestamp_field` (epoch ms when the field is a number).
    #[serde(default)]
    pub timestamp_format: Option<String>,
    /// `always`, `interval` or `never`.
    #[serde(default)]
    pub fsync: FsyncMode,
    /// Sync period for `fsync = "interval"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub fsync_interval_ms: Option<u64>,
    /// Delete sealed segments older than this.
    #[serde(default)]
    pub retention_ms: Option<u64>,
    /// Delete the oldest sealed segments while a partition is larger.
    #[serde(default)]
    pub retention_bytes: Option<u64>,
    /// Face bindings.
    #[serde(default)]
    pub bindings: Bindings,
    /// Client addresses records are taken from on every face, as IPs or
    /// CIDR ranges; empty for any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>, example = json!(["10.0.0.0/8", "192.0.2.7"]))]
    pub allowed_ips: Vec<IpRange>,
    /// `active` or `paused`.
    #[serde(default)]
    pub state: StreamState,
    /// Where records are forwarded (Kafka, NATS JetStream).
    #[serde(default)]
    pub sinks: Vec<SinkDefinition>,
    /// When a push is answered: after the local fsync, or after a sink's
    /// broker acknowledged it.
    #[serde(default)]
    pub ack: AckMode,
    /// The sink whose acknowledgement `ack = "sink"` waits for (may be
    /// left out when the stream has exactly one sink).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_sink: Option<String>,
    /// How long `ack = "sink"` waits for the broker before answering 503
    /// with `Retry-After` (the records stay in the log and are forwarded
    /// later); default 10 000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_timeout_ms: Option<u64>,
    /// How long a request key (`Idempotency-Key`, or a producer's
    /// sequence) is remembered: a retry within it is answered with the
    /// first answer and writes nothing. A duration such as `24h`, `90m`.
    #[serde(default = "default_dedup_window")]
    #[schema(example = "24h")]
    pub dedup_window: String,
    /// Most request keys the stream holds; past it the oldest go first
    /// (with a warning and the `intake_dedup_evicted_keys_total` metric).
    #[serde(default = "default_dedup_max_keys")]
    pub dedup_max_keys: u64,
}

/// `dedup_window` unless the definition says otherwise.
pub const DEFAULT_DEDUP_WINDOW: &str = "24h";
/// `dedup_max_keys` unless the definition says otherwise.
pub const DEFAULT_DEDUP_MAX_KEYS: u64 = 10_000_000;

fn default_dedup_window() -> String {
    DEFAULT_DEDUP_WINDOW.to_owned()
}

fn default_dedup_max_keys() -> u64 {
    DEFAULT_DEDUP_MAX_KEYS
}

/// An IP address or a CIDR range of them, written `10.1.2.3`,
/// `10.0.0.0/8` or `2001:db8::/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRange(ipnet::IpNet);

impl IpRange {
    /// True when `ip` is in the range (an IPv4 address written as IPv6,
    /// `::ffff:a.b.c.d`, counts as the IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

impl FromStr for IpRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(net) = s.parse::<ipnet::IpNet>() {
            return Ok(Self(net.trunc()));
        }
        s.parse::<IpAddr>()
            .map(|ip| Self(ipnet::IpNet::from(ip)))
            .map_err(|_| format!("{s:?} is neither an IP address nor a CIDR range like 10.0.0.0/8"))
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.prefix_len() == self.0.max_prefix_len() {
            self.0.addr().fmt(f)
        } else {
            self.0.fmt(f)
        }
    }
}

impl Serialize for IpRange {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpRange {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// When a push is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AckMode {
    /// Once every record is in the local log and fsynced.
    #[default]
    Local,
    /// Once the `ack_sink`'s broker acknowledged every record.
    Sink,
}

/// A sink: where a stream's records are forwarded, in order per partition,
/// exactly once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SinkDefinition {
    /// Unique within the stream: letters, digits, `.`, `_`, `-`.
    #[schema(pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$")]
    pub name: String,
    /// The broker and where on it.
    #[serde(flatten)]
    pub target: SinkTarget,
    /// How far (in bytes) the sink may fall behind before retention may
    /// delete records it has not forwarded; unset: retention waits for the
    /// sink, however long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub max_lag_bytes: Option<u64>,
    /// Most records per send (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub batch_records: Option<usize>,
    /// Most batches sent and not yet acknowledged, per partition
    /// (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub max_in_flight_batches: Option<usize>,
    /// Most payload bytes sent and not yet acknowledged, per partition
    /// (default 16 MiB; one batch is always let through).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub max_in_flight_bytes: Option<u64>,
}

/// The broker of a sink, by `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SinkTarget {
    /// NATS JetStream: every record published to `subject` with
    /// `Nats-Msg-Id: <stream>/<partition>/<offset>`.
    Nats {
        /// Server URL, e.g. `nats://127.0.0.1:4222`.
        url: String,
        /// Subject to publish to; a JetStream stream is created for it
        /// when none captures it.
        subject: String,
    },
    /// Kafka, through an idempotent producer with `acks=all`.
    Kafka {
        /// Bootstrap servers, `host:port[,host:port...]`.
        brokers: String,
        /// Topic to produce to.
        topic: String,
        /// Which topic partition a record goes to.
        #[serde(default)]
        partitioning: KafkaPartitioning,
        /// Extra librdkafka producer settings (`linger.ms`,
        /// `compression.type`, ...).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        producer: BTreeMap<String, String>,
    },
}

impl SinkTarget {
    /// `nats` or `kafka`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Nats { .. } => "nats",
            Self::Kafka { .. } => "kafka",
        }
    }
}

/// Whether a sink is sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SinkState {
    /// Forwarding.
    #[default]
    Running,
    /// Paused by an operator; records wait in the log.
    Paused,
}

/// `GET /v1/streams/{name}/sinks`: one sink's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SinkStatus {
    /// The sink's name.
    pub name: String,
    /// `nats` or `kafka`.
    pub kind: String,
    /// Running or paused.
    pub state: SinkState,
    /// Records stored but not yet acknowledged by the broker.
    pub lag_records: u64,
    /// Their size on disk (estimated from the partitions' average record
    /// size).
    pub lag_bytes: u64,
    /// Records acknowledged by the broker since the node started.
    pub sent: u64,
    /// Failed sends since the node started (each is retried).
    pub errors: u64,
    /// Records retention deleted before they were forwarded (only with
    /// `max_lag_bytes`).
    pub skipped_records: u64,
    /// True while the lag is over `max_lag_bytes`: retention no longer
    /// waits for this sink.
    pub lag_limit_exceeded: bool,
    /// The last send error, if the last send failed.
    pub last_error: Option<String>,
    /// Per partition.
    pub partitions: Vec<SinkPartitionStatus>,
}

/// A sink's progress in one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SinkPartitionStatus {
    /// The partition.
    pub partition: u32,
    /// Offset of the next record to forward (committed).
    pub cursor: u64,
    /// Offset the next stored record will get.
    pub next_offset: u64,
    /// `next_offset - cursor`.
    pub lag_records: u64,
    /// Estimated bytes of those records.
    pub lag_bytes: u64,
}

/// `POST /v1/streams/{name}/sinks/{sink}/reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SinkReset {
    /// Offset to forward from, in every partition (clamped to what is
    /// retained).
    pub to: u64,
}

/// How a Kafka sink picks the topic partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KafkaPartitioning {
    /// By the hash of the record key (Kafka's default partitioner); records
    /// without a key are spread by the producer.
    #[default]
    KeyHash,
    /// The topic partition numbered like the stream partition (the topic
    /// needs at least as many partitions).
    Mirror,
}

fn default_partitions() -> u32 {
    1
}

fn default_delimiter() -> String {
    ",".to_owned()
}

impl StreamDefinition {
    /// The definition as API answers show it: secrets replaced by
    /// [`REDACTED`].
    pub fn redacted(&self) -> Self {
        let mut shown = self.clone();
        for credential in &mut shown.bindings.datahub_credentials {
            REDACTED.clone_into(&mut credential.secret_key);
        }
        shown
    }

    /// A schemaless JSON stream with one partition and every default.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            partitions: 1,
            kind: StreamKind::Stream,
            retain_size: None,
            format: Format::Json,
            delimiter: default_delimiter(),
            schema_id: None,
            schema: None,
            strict_validation: false,
            key_field: None,
            timestamp_field: None,
            timestamp_format: None,
            fsync: FsyncMode::Always,
            fsync_interval_ms: None,
            retention_ms: None,
            retention_bytes: None,
            bindings: Bindings::default(),
            allowed_ips: Vec::new(),
            state: StreamState::Active,
            sinks: Vec::new(),
            ack: AckMode::Local,
            ack_sink: None,
            ack_timeout_ms: None,
            dedup_window: default_dedup_window(),
            dedup_max_keys: DEFAULT_DEDUP_MAX_KEYS,
        }
    }
}

/// Checks a stream name: 1 to 200 characters of `[A-Za-z0-9._-]`, starting
/// with a letter or digit (so never `.`, `..` or a path).
///
/// # Errors
/// A sentence saying what is wrong.
pub fn check_stream_name(name: &str) -> Result<(), String> {
    let first_ok = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric());
    let rest_ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if name.is_empty() || name.len() > MAX_STREAM_NAME_LEN || !first_ok || !rest_ok {
        return Err(format!(
            "stream name {name:?} is not valid: use 1 to {MAX_STREAM_NAME_LEN} letters, digits, '.', '_' or '-', starting with a letter or digit"
        ));
    }
    Ok(())
}

/// Body of `PUT /v1/streams/{name}/state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StateChange {
    /// The new state.
    pub state: StreamState,
}

/// Offsets a push wrote to one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PartitionOffsets {
    /// Partition number.
    pub partition: u32,
    /// Offset of the first record written there.
    pub first_offset: u64,
    /// Offset of the last record written there.
    pub last_offset: u64,
}

/// Answer to a successful push: every record is durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppendResponse {
    /// Records written.
    pub records: usize,
    /// Where they went.
    pub partitions: Vec<PartitionOffsets>,
}

/// One record as the read and tail APIs show it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecordView {
    /// Partition of the record.
    #[serde(default)]
    pub partition: u32,
    /// Offset in its partition.
    pub offset: u64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// Key as text (base64 if it is not UTF-8), or null.
    pub key: Option<String>,
    /// The JSON value for JSON streams, else the bytes in base64.
    #[schema(value_type = Value)]
    pub value: Box<RawValue>,
    /// Headers, values as text (base64 if not UTF-8).
    pub headers: BTreeMap<String, String>,
}

/// Answer to `GET /v1/streams/{name}/partitions/{p}/records`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReadResponse {
    /// Records in offset order.
    pub records: Vec<RecordView>,
    /// Offset to ask for next.
    pub next_offset: u64,
}

/// Live numbers of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PartitionStatus {
    /// Partition number.
    pub partition: u32,
    /// Oldest retained offset.
    pub start_offset: u64,
    /// Offset the next record will get.
    pub next_offset: u64,
    /// Bytes on disk.
    pub size_bytes: u64,
}

/// A stream as `GET /v1/streams/{name}` shows it: the definition with
/// defaults filled in, plus its partitions' numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamView {
    /// The stored definition.
    #[serde(flatten)]
    pub definition: StreamDefinition,
    /// Per-partition offsets and sizes.
    #[serde(default)]
    pub status: Vec<PartitionStatus>,
    /// What the stream's table of request keys holds now.
    #[serde(default)]
    pub dedup: DedupStatus,
}

/// What a stream's table of request keys holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DedupStatus {
    /// Request keys held (idempotency keys and producer sequences).
    pub keys: u64,
    /// Producers whose sequence is followed.
    pub producers: u64,
    /// Keys dropped since start because `dedup_max_keys` was reached.
    pub evicted: u64,
    /// Approximate memory the keys take, in bytes.
    pub bytes: u64,
    /// Requests answered with an earlier answer since start.
    pub replayed: u64,
    /// Requests refused since start for reusing a key with another request.
    pub reused: u64,
}

/// One object: the definition's properties plus `status`. (A derived
/// schema would say `allOf` the definition, whose `additionalProperties:
/// false` would then refuse `status`.)
impl utoipa::PartialSchema for StreamView {
    fn schema() -> RefOr<Schema> {
        let mut shape = match StreamDefinition::schema() {
            RefOr::T(Schema::Object(object)) => object,
            _ => Object::new(),
        };
        shape.description = Some(
            "A stream: its stored definition, plus per-partition offsets and sizes in `status`."
                .into(),
        );
        shape.additional_properties = None;
        shape
            .properties
            .insert("status".into(), <Vec<PartitionStatus>>::schema());
        shape.required.push("status".into());
        shape
            .properties
            .insert("dedup".into(), DedupStatus::schema());
        RefOr::T(Schema::Object(shape))
    }
}

impl ToSchema for StreamView {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((StreamDefinition::name().into(), StreamDefinition::schema()));
        StreamDefinition::schemas(schemas);
        schemas.push((PartitionStatus::name().into(), PartitionStatus::schema()));
        schemas.push((DedupStatus::name().into(), DedupStatus::schema()));
    }
}

/// Answer to `GET /v1/streams`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StreamList {
    /// Every stream, by name.
    pub streams: Vec<StreamView>,
}

/// The error body of the native API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorResponse {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong, for machines (`code`) and people (`message`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code, e.g. `stream_not_found`.
    pub code: String,
    /// A sentence saying what was wrong and what is accepted.
    pub message: String,
    /// With `out_of_order_sequence`: the `Intake-Sequence` the stream
    /// expects next from that producer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_name_is_required_and_defaults_fill_in() {
        let def: StreamDefinition = serde_json::from_str(r#"{"name":"demo"}"#).unwrap();
        assert_eq!(def, StreamDefinition::new("demo"));
        let json = serde_json::to_value(&def).unwrap();
        assert_eq!(json["partitions"], 1);
        assert_eq!(json["kind"], "stream");
        assert_eq!(json["format"], "json");
        assert_eq!(json["delimiter"], ",");
        assert_eq!(json["fsync"], "always");
        assert_eq!(json["state"], "active");
        assert_eq!(json["schema"], serde_json::Value::Null);
    }

    #[test]
    fn design_example_parses() {
        let def: StreamDefinition = serde_json::from_str(
            r#"{"name": "demo", "partitions": 1, "kind": "stream", "retain_size": null,
   "format": "json", "delimiter": ",", "schema_id": null,
   "schema": [{"name": "temp", "type": "float"}],
   "strict_validation": false, "key_field": null,
   "timestamp_field": null, "timestamp_format": null,
   "fsync": "always", "retention_ms": null, "retention_bytes": null,
   "bindings": {"inlong": [{"group_id": "g1", "stream_id": "s1"}],
                "datahub_id": "datahub-demo",
                "datasource": {"path": "/api/data", "method": "POST"}}}"#,
        )
        .unwrap();
        assert_eq!(def.bindings.inlong[0].group_id, "g1");
        assert_eq!(def.schema.as_ref().unwrap()[0].name, "temp");
        let again: StreamDefinition =
            serde_json::from_value(serde_json::to_value(&def).unwrap()).unwrap();
        assert_eq!(again, def);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<StreamDefinition>(r#"{"name":"a","partitons":2}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("partitons"), "{err}");
    }

    #[test]
    fn stream_names() {
        for ok in ["a", "demo", "Orders.v2", "x_y-z", "0"] {
            check_stream_name(ok).unwrap();
        }
        let long = "a".repeat(MAX_STREAM_NAME_LEN + 1);
        for bad in [
            "",
            ".",
            "..",
            "../etc",
            "a/b",
            "-x",
            ".hidden",
            "a b",
            "é",
            long.as_str(),
        ] {
            assert!(check_stream_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ip_ranges_parse_match_and_print_back() {
        let def: StreamDefinition = serde_json::from_str(
            r#"{"name":"d","allowed_ips":["10.1.2.3","10.8.0.0/16","2001:db8::/32","10.9.9.9/8"]}"#,
        )
        .unwrap();
        let shown = serde_json::to_value(&def).unwrap();
        assert_eq!(
            shown["allowed_ips"],
            serde_json::json!(["10.1.2.3", "10.8.0.0/16", "2001:db8::/32", "10.0.0.0/8"])
        );
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let [one, net, v6, wide] = def.allowed_ips[..] else {
            panic!("four ranges")
        };
        assert!(one.contains(ip("10.1.2.3")) && !one.contains(ip("10.1.2.4")));
        assert!(net.contains(ip("10.8.255.255")) && !net.contains(ip("10.9.0.0")));
        assert!(net.contains(ip("::ffff:10.8.0.1")), "IPv4 written as IPv6");
        assert!(v6.contains(ip("2001:db8::1")) && !v6.contains(ip("2001:db9::1")));
        assert!(wide.contains(ip("10.200.0.1")));
        for bad in ["10.0.0.0/33", "example.com", "", "10.0.0"] {
            let err = serde_json::from_value::<StreamDefinition>(
                serde_json::json!({"name": "d", "allowed_ips": [bad]}),
            )
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("neither an IP address nor a CIDR range"),
                "{bad}: {err}"
            );
        }
        // None given: the field is left out of answers.
        let open = serde_json::to_value(StreamDefinition::new("o")).unwrap();
        assert!(open.get("allowed_ips").is_none());
    }
}
