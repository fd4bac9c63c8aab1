//! Running the real `intake` binary in tests: start it on a free loopback
//! port, wait for "listening on", and kill or stop it.
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses part of the fixture"
)]
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running `intake serve`.
pub struct Intake {
    child: Child,
    /// `host:port` it listens on.
    pub addr: String,
}

impl Intake {
    /// `intake serve` on a free loopback port with `data_dir`, plus `args`.
    pub fn serve(data_dir: &Path, args: &[&str]) -> Self {
        Self::serve_with_env(data_dir, args, &[])
    }

    /// [`Intake::serve`] with environment variables (`INTAKE_...`
    /// settings) set for the process.
    pub fn serve_with_env(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn(
            Command::new(env!("CARGO_BIN_EXE_intake")),
            data_dir,
            args,
            env,
            Stdio::inherit(),
        )
    }

    /// [`Intake::serve_with_env`] with the node's log (stderr) appended
    /// to the file `log`, so that a test can read its events, also over
    /// restarts.
    pub fn serve_logging_to(
        data_dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        log: &Path,
    ) -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        Self::spawn(
            Command::new(env!("CARGO_BIN_EXE_intake")),
            data_dir,
            args,
            env,
            Stdio::from(file),
        )
    }

    /// [`Intake::serve`] run in the working directory `cwd`, so that a
    /// relative `data_dir` is resolved there.
    pub fn serve_in(cwd: &Path, data_dir: &Path, args: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_intake"));
        command.current_dir(cwd);
        Self::spawn(command, data_dir, args, &[], Stdio::inherit())
    }

    /// [`Intake::serve`] started with a soft limit of `open_files` open
    /// files (`ulimit -Sn`), as a system's default soft limit would.
    pub fn serve_with_open_files_limit(data_dir: &Path, open_files: u32) -> Self {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            &format!("ulimit -Sn {open_files} && exec \"$0\" \"$@\""),
            env!("CARGO_BIN_EXE_intake"),
        ]);
        Self::spawn(command, data_dir, &[], &[], Stdio::inherit())
    }

    fn spawn(
        mut command: Command,
        data_dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        stderr: Stdio,
    ) -> Self {
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .env("INTAKE_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Self { child, addr }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://host:port` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Drop for Intake {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A NATS server with JetStream of the test's own, on a free port, keeping
/// its store in a directory that survives [`Nats::stop`] and
/// [`Nats::start`] (a broker outage).
pub struct Nats {
    child: Option<Child>,
    /// The port it listens on.
    pub port: u16,
    store: tempfile::TempDir,
}

impl Nats {
    /// Starts `/usr/sbin/nats-server -js` on a free port.
    pub fn start_new() -> Self {
        let port = free_port();
        let mut nats = Self {
            child: None,
            port,
            store: tempfile::tempdir().unwrap(),
        };
        nats.start();
        nats
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the server on its port and store, and waits until it
    /// accepts connections.
    pub fn start(&mut self) {
        let child = Command::new("/usr/sbin/nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (Debian package nats-server) must be installed");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("nats-server did not start on port {}", self.port);
    }

    /// Kills the server (an outage).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A new, empty schema in the PostgreSQL at 127.0.0.1:5432 (database
/// `test`, user `postgres`; `./test.sh` starts one when none runs), named
/// after `name` and this process. Fails when PostgreSQL does not answer.
pub async fn fresh_postgres_schema(name: &str) -> String {
    use sqlx::Executor;
    let pool = sqlx::postgres::PgPool::connect(&postgres_url(5432, None))
        .await
        .expect("PostgreSQL must run on 127.0.0.1:5432 with database test");
    let schema = format!("intake_{name}_{}", std::process::id());
    pool.execute(format!("DROP SCHEMA IF EXISTS {schema} CASCADE").as_str())
        .await
        .unwrap();
    pool.execute(format!("CREATE SCHEMA {schema}").as_str())
        .await
        .unwrap();
    schema
}

/// The URL of database `test` on 127.0.0.1:`port`, in `schema` if given.
pub fn postgres_url(port: u16, schema: Option<&str>) -> String {
    let base = format!("postgres://postgres@127.0.0.1:{port}/test");
    match schema {
        Some(schema) => format!("{base}?options=-c%20search_path%3D{schema}"),
        None => base,
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections on `port`.
fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A name no earlier run used (brokers outlive tests).
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// `GET` of `path` on `node`, the body as JSON.
pub async fn get_json(http: &reqwest::Client, node: &Intake, path: &str) -> Value {
    http.get(node.url(path))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `POST /v1/streams` with `definition`, expecting 201.
pub async fn create_stream(http: &reqwest::Client, node: &Intake, definition: Value) {
    let r = http
        .post(node.url("/v1/streams"))
        .json(&definition)
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert_eq!(status, 201, "{}", r.text().await.unwrap());
}

/// Pushes `records` as one request; on success the (partition, offset) of
/// each record in order (a request's records go to one partition). On
/// failure the status and the body, with `retry-after:true|false`.
pub async fn push(
    http: &reqwest::Client,
    node: &Intake,
    stream: &str,
    records: &[Value],
) -> Result<Vec<(u32, u64)>, (u16, String)> {
    push_to(http, &node.url(""), stream, records).await
}

/// [`push`] to the node at `base` (`http://host:port`), for clients that
/// outlive one [`Intake`] (restarted on another port).
pub async fn push_to(
    http: &reqwest::Client,
    base: &str,
    stream: &str,
    records: &[Value],
) -> Result<Vec<(u32, u64)>, (u16, String)> {
    let r = http
        .post(format!("{base}/v1/streams/{stream}/records"))
        .json(&records)
        .send()
        .await
        .map_err(|e| (0, e.to_string()))?;
    let status = r.status().as_u16();
    let retry_after = r.headers().get("retry-after").is_some();
    let body: Value = r.json().await.map_err(|e| (status, e.to_string()))?;
    if status != 200 {
        return Err((status, format!("{body} retry-after:{retry_after}")));
    }
    let parts = body["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 1, "{body}");
    let p = parts[0]["partition"].as_u64().unwrap() as u32;
    let first = parts[0]["first_offset"].as_u64().unwrap();
    Ok((0..records.len() as u64).map(|i| (p, first + i)).collect())
}

/// Clients pushing 5-record requests to `stream` until [`Pushers::stop`];
/// every acknowledged record is kept by (partition, offset).
pub struct Pushers {
    acked: Arc<parking_lot::Mutex<BTreeMap<(u32, u64), Value>>>,
    stop: tokio_util::sync::CancellationToken,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Pushers {
    /// Starts `clients` pushers; a refused push fails the test (local
    /// acknowledgements must not depend on a broker).
    pub fn start(http: &reqwest::Client, node: &Arc<Intake>, stream: &str, clients: usize) -> Self {
        let acked = Arc::new(parking_lot::Mutex::new(BTreeMap::new()));
        let stop = tokio_util::sync::CancellationToken::new();
        let clients = (0..clients)
            .map(|client| {
                let (http, node, stream, acked, stop) = (
                    http.clone(),
                    Arc::clone(node),
                    stream.to_owned(),
                    Arc::clone(&acked),
                    stop.clone(),
                );
                tokio::spawn(async move {
                    let mut n = 0;
                    while !stop.is_cancelled() {
                        let records: Vec<Value> = (0..5)
                            .map(|i| serde_json::json!({"client": client, "n": n, "i": i}))
                            .collect();
                        let placed = push(&http, &node, &stream, &records)
                            .await
                            .expect("local acks do not depend on the broker");
                        let mut acked = acked.lock();
                        for (at, record) in placed.into_iter().zip(records) {
                            acked.insert(at, record);
                        }
                        n += 1;
                    }
                })
            })
            .collect();
        Self {
            acked,
            stop,
            clients,
        }
    }

    /// Stops the clients; the acknowledged records.
    pub async fn stop(self) -> BTreeMap<(u32, u64), Value> {
        self.stop.cancel();
        for c in self.clients {
            c.await.unwrap();
        }
        self.acked.lock().clone()
    }
}

/// `GET /v1/streams/{stream}/sinks`.
pub async fn sinks_status(http: &reqwest::Client, node: &Intake, stream: &str) -> Value {
    get_json(http, node, &format!("/v1/streams/{stream}/sinks")).await
}

/// Polls until no sink of `stream` lags (or a minute passes); returns the
/// first sink's status.
pub async fn wait_forwarded(http: &reqwest::Client, node: &Intake, stream: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let sinks = sinks_status(http, node, stream).await;
        if sinks
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["lag_records"] == 0)
        {
            return sinks[0].clone();
        }
        assert!(Instant::now() < deadline, "sink still behind: {sinks}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks that every acknowledged record arrived downstream, in
/// per-partition order and without gaps; `got` is (stream partition,
/// stream offset, value) in the order read. Returns the duplicates.
pub fn check_downstream<'a>(
    acked: &BTreeMap<(u32, u64), Value>,
    got: impl IntoIterator<Item = (u32, u64, &'a Value)>,
) -> usize {
    let mut seen: BTreeMap<(u32, u64), &Value> = BTreeMap::new();
    let mut last: HashMap<u32, u64> = HashMap::new();
    let mut duplicates = 0;
    for (partition, offset, value) in got {
        if seen.insert((partition, offset), value).is_some() {
            duplicates += 1;
            continue;
        }
        if let Some(before) = last.insert(partition, offset) {
            assert!(
                offset > before,
                "partition {partition} out of order: {offset} after {before}"
            );
        }
    }
    for ((p, o), value) in acked {
        assert_eq!(
            seen.get(&(*p, *o)),
            Some(&value),
            "acknowledged record {p}/{o} missing or different downstream"
        );
    }
    let mut by_partition: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for (p, o) in seen.keys() {
        by_partition.entry(*p).or_default().push(*o);
    }
    for (p, offsets) in by_partition {
        let expected: Vec<u64> = (0..offsets.len() as u64).collect();
        assert_eq!(offsets, expected, "partition {p} has gaps downstream");
    }
    duplicates
}

/// The `tansu` Kafka-protocol broker: `~/.cargo/bin/tansu` or on `PATH`
/// (`cargo install tansu --version 0.6.0 --features dynostore`; `./test.sh`
/// installs it).
fn tansu_binary() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let installed = home.join(".cargo/bin/tansu");
    if installed.exists() {
        return installed;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("tansu"))
        .find(|p| p.exists());
    on_path.expect(
        "the tansu Kafka broker is required: cargo install tansu --version 0.6.0 \
         --features dynostore (./test.sh does this)",
    )
}

/// A tansu broker with in-memory storage, reached by clients through a
/// [`CutProxy`] (so the test can cut the broker off without losing what
/// it stored: memory storage does not survive a restart).
pub struct Kafka {
    child: Child,
    /// The proxy clients dial (the broker's advertised address).
    pub proxy: CutProxy,
}

impl Kafka {
    /// Starts tansu on a free port, advertising the proxy's port.
    pub async fn start() -> Self {
        let broker_port = free_port();
        let proxy = CutProxy::start(broker_port).await;
        let child = Command::new(tansu_binary())
            .args([
                "broker",
                "--listener-url",
                &format!("tcp://127.0.0.1:{broker_port}"),
                "--advertised-listener-url",
                &format!("tcp://127.0.0.1:{}", proxy.port),
                "--storage-engine",
                "memory://tansu/",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        tokio::task::spawn_blocking(move || wait_listening(broker_port, "tansu"))
            .await
            .unwrap();
        Self { child, proxy }
    }

    /// `127.0.0.1:PORT` for `bootstrap.servers`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.proxy.port)
    }

    /// Creates `topic` with `partitions` partitions.
    pub async fn create_topic(&self, topic: &str, partitions: i32) {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        let admin: AdminClient<rdkafka::client::DefaultClientContext> =
            rdkafka::ClientConfig::new()
                .set("bootstrap.servers", self.brokers())
                .create()
                .unwrap();
        let results = admin
            .create_topics(
                &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .unwrap();
        for r in results {
            r.unwrap();
        }
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// A TCP proxy on a free loopback port to `127.0.0.1:target`, which a test
/// can cut (open connections dropped, new ones refused), stall (new
/// connections accepted and then never answered, as behind a network that
/// drops packets) and restore: a network outage between intake and a
/// broker or a database.
pub struct CutProxy {
    /// The port it listens on.
    pub port: u16,
    mode: Arc<AtomicU8>,
    generation: tokio::sync::watch::Sender<u64>,
}

const PROXY_OPEN: u8 = 0;
const PROXY_CUT: u8 = 1;
const PROXY_STALLED: u8 = 2;

impl CutProxy {
    /// Starts proxying to `target`.
    pub async fn start(target: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(PROXY_OPEN));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let (proxy_mode, generations) = (Arc::clone(&mode), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let mut cut_signal = generations.subscribe();
                match proxy_mode.load(Ordering::SeqCst) {
                    // Dropped: the client sees the connection close.
                    PROXY_CUT => continue,
                    // Held open, silent, until the next cut or restore.
                    PROXY_STALLED => {
                        tokio::spawn(async move {
                            let _held = inbound;
                            let _ = cut_signal.changed().await;
                        });
                        continue;
                    }
                    _ => {}
                }
                tokio::spawn(async move {
                    let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_signal.changed() => {}
                    }
                });
            }
        });
        Self {
            port,
            mode,
            generation,
        }
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.mode.store(PROXY_CUT, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Drops every open connection; new ones are accepted and then get no
    /// answer.
    pub fn stall(&self) {
        self.mode.store(PROXY_STALLED, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Accepts and forwards connections again (stalled ones are dropped).
    pub fn restore(&self) {
        self.mode.store(PROXY_OPEN, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }
}
