//! The client commands: stream management, push, tail, read.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Context;
use futures::StreamExt;
use intake_format::api::{
    ReadResponse, SinkReset, SinkStatus, StreamDefinition, StreamList, StreamView,
};

use crate::api::Client;

/// Flags of `intake stream create` that override the definition.
#[derive(Debug, Default)]
pub(crate) struct CreateFlags {
    pub(crate) partitions: Option<u32>,
    pub(crate) fsync: Option<String>,
    pub(crate) key_field: Option<String>,
    pub(crate) timestamp_field: Option<String>,
}

fn read_input(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

/// `intake stream create --sql`: the statement, checked here first, goes
/// to eKuiper's `POST /streams` (or `/tables`); prints the node's answer.
pub(crate) async fn create_stream_sql(client: &Client, sql: &str) -> anyhow::Result<()> {
    use intake_format::ddl::{Statement, parse};
    let kind = match parse(sql).map_err(|e| anyhow::anyhow!("invalid statement {e}"))? {
        Statement::Create { definition, .. } => definition.kind,
        _ => anyhow::bail!("--sql takes a CREATE STREAM or CREATE TABLE statement"),
    };
    let path = match kind {
        intake_format::api::StreamKind::Stream => "/streams",
        intake_format::api::StreamKind::Table => "/tables",
    };
    let response = client
        .send(
            client
                .http()
                .post(client.url(path))
                .json(&serde_json::json!({ "sql": sql })),
        )
        .await?;
    println!("{}", response.text().await?);
    Ok(())
}

pub(crate) async fn create_stream(
    client: &Client,
    name: String,
    definition: Option<PathBuf>,
    flags: CreateFlags,
) -> anyhow::Result<()> {
    let mut def: serde_json::Value = match &definition {
        Some(path) => {
            serde_json::from_slice(&read_input(path)?).context("the definition is not JSON")?
        }
        None => serde_json::json!({}),
    };
    let obj = def
        .as_object_mut()
        .context("the definition must be a JSON object")?;
    obj.insert("name".into(), name.into());
    if let Some(p) = flags.partitions {
        obj.insert("partitions".into(), p.into());
    }
    if let Some(f) = flags.fsync {
        obj.insert("fsync".into(), f.into());
    }
    if let Some(k) = flags.key_field {
        obj.insert("key_field".into(), k.into());
    }
    if let Some(t) = flags.timestamp_field {
        obj.insert("timestamp_field".into(), t.into());
    }
    let view: StreamView = client
        .json(client.http().post(client.url("/v1/streams")).json(&def))
        .await?;
    print_json(&view)
}

fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

pub(crate) async fn list_streams(client: &Client) -> anyhow::Result<()> {
    let list: StreamList = client
        .json(client.http().get(client.url("/v1/streams")))
        .await?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<32} {:>10} {:>8} {:>14}",
        "NAME", "PARTITIONS", "STATE", "RECORDS"
    )?;
    for s in list.streams {
        let records: u64 = s
            .status
            .iter()
            .map(|p| p.next_offset - p.start_offset)
            .sum();
        let state = serde_json::to_value(s.definition.state)?;
        writeln!(
            out,
            "{:<32} {:>10} {:>8} {:>14}",
            s.definition.name,
            s.definition.partitions,
            state.as_str().unwrap_or("?"),
            records
        )?;
    }
    Ok(())
}

pub(crate) async fn show_stream(client: &Client, name: &str) -> anyhow::Result<()> {
    let view: StreamView = client
        .json(
            client
                .http()
                .get(client.url(&format!("/v1/streams/{name}"))),
        )
        .await?;
    print_json(&view)
}

pub(crate) async fn list_sinks(client: &Client, stream: &str) -> anyhow::Result<()> {
    let sinks: Vec<SinkStatus> = client
        .json(
            client
                .http()
                .get(client.url(&format!("/v1/streams/{stream}/sinks"))),
        )
        .await?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<24} {:>6} {:>8} {:>12} {:>14} {:>12} {:>8}  LAST ERROR",
        "SINK", "KIND", "STATE", "LAG", "LAG BYTES", "SENT", "ERRORS"
    )?;
    for s in sinks {
        let state = serde_json::to_value(s.state)?;
        writeln!(
            out,
            "{:<24} {:>6} {:>8} {:>12} {:>14} {:>12} {:>8}  {}",
            s.name,
            s.kind,
            state.as_str().unwrap_or("?"),
            s.lag_records,
            s.lag_bytes,
            s.sent,
            s.errors,
            s.last_error.as_deref().unwrap_or("-")
        )?;
    }
    Ok(())
}

/// `intake sink pause|resume|reset`: `action` is the route's last segment.
pub(crate) async fn change_sink(
    client: &Client,
    stream: &str,
    sink: &str,
    action: &str,
    to: Option<u64>,
) -> anyhow::Result<()> {
    let mut request = client
        .http()
        .post(client.url(&format!("/v1/streams/{stream}/sinks/{sink}/{action}")));
    if let Some(to) = to {
        request = request.json(&SinkReset { to });
    }
    let status: SinkStatus = client.json(request).await?;
    print_json(&status)
}

pub(crate) async fn delete_stream(client: &Client, name: &str) -> anyhow::Result<()> {
    client
        .send(
            client
                .http()
                .delete(client.url(&format!("/v1/streams/{name}"))),
        )
        .await?;
    eprintln!("deleted stream {name}");
    Ok(())
}

pub(crate) async fn set_state(client: &Client, name: &str, pause: bool) -> anyhow::Result<()> {
    let state = if pause { "paused" } else { "active" };
    let view: StreamView = client
        .json(
            client
                .http()
                .put(client.url(&format!("/v1/streams/{name}/state")))
                .json(&serde_json::json!({ "state": state })),
        )
        .await?;
    let _: &StreamDefinition = &view.definition;
    eprintln!("stream {name} is {state}");
    Ok(())
}

/// Sends NDJSON lines in batches; stops at the first refused batch and says
/// how many records were acknowledged before it.
/// Where `intake push` sends: one node, or a cluster through the SDK
/// (discovery from the manager, least-load choice, retries and failover).
pub(crate) enum PushVia {
    /// One node's native API, as one producer (a random id) whose
    /// sequence counts the batches.
    Node(Client, String, std::sync::atomic::AtomicU64),
    /// The nodes a manager lists.
    Cluster(intake_client::Client),
}

impl PushVia {
    /// Sends one NDJSON batch; returns the records acknowledged.
    async fn send(&self, stream: &str, body: bytes::Bytes) -> anyhow::Result<usize> {
        match self {
            Self::Node(client, producer, next) => {
                let sequence = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(client
                    .push_ndjson(stream, body, producer, sequence)
                    .await?
                    .records)
            }
            Self::Cluster(client) => {
                let records = body
                    .split(|b| *b == b'\n')
                    .filter(|line| !line.is_empty())
                    .map(|line| body.slice_ref(line))
                    .collect();
                Ok(client.send(stream, records).await?.response.records)
            }
        }
    }
}

pub(crate) async fn push(
    client: &PushVia,
    stream: &str,
    file: Option<PathBuf>,
    batch_records: usize,
    batch_bytes: usize,
) -> anyhow::Result<()> {
    let reader: Box<dyn BufRead> = match &file {
        Some(path) if path.as_os_str() != "-" => Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        )),
        _ => Box::new(std::io::stdin().lock()),
    };
    let started = std::time::Instant::now();
    let mut batch = Vec::new();
    let mut in_batch = 0usize;
    let mut acknowledged = 0usize;
    let mut requests = 0usize;
    let mut send = async |batch: &mut Vec<u8>, in_batch: &mut usize| -> anyhow::Result<()> {
        if *in_batch == 0 {
            return Ok(());
        }
        let body = bytes::Bytes::from(std::mem::take(batch));
        let records = client.send(stream, body).await.with_context(|| {
            format!("{acknowledged} records were acknowledged before this batch failed")
        })?;
        acknowledged += records;
        requests += 1;
        *in_batch = 0;
        Ok(())
    };
    for line in reader.lines() {
        let line = line.context("cannot read input")?;
        if line.trim().is_empty() {
            continue;
        }
        if in_batch > 0 && (in_batch >= batch_records || batch.len() + line.len() + 1 > batch_bytes)
        {
            send(&mut batch, &mut in_batch).await?;
        }
        batch.extend_from_slice(line.as_bytes());
        batch.push(b'\n');
        in_batch += 1;
    }
    send(&mut batch, &mut in_batch).await?;
    eprintln!(
        "pushed {acknowledged} records in {requests} requests ({:.1}s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Follows the SSE tail and prints each record's JSON on its own line.
pub(crate) async fn tail(
    client: &Client,
    stream: &str,
    from: &str,
    partition: Option<u32>,
) -> anyhow::Result<()> {
    let mut url = client.url(&format!("/v1/streams/{stream}/tail?from={from}"));
    if let Some(p) = partition {
        url.push_str(&format!("&partition={p}"));
    }
    let response = client.send(client.http().get(url)).await?;
    let mut body = response.bytes_stream();
    let mut pending = Vec::new();
    while let Some(chunk) = body.next().await {
        pending.extend_from_slice(&chunk.context("the tail connection broke")?);
        while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = pending.drain(..end + 2).collect();
            let mut out = std::io::stdout().lock();
            for line in event.split(|&b| b == b'\n') {
                if let Some(data) = line.strip_prefix(b"data:") {
                    out.write_all(data.strip_prefix(b" ").unwrap_or(data))?;
                    out.write_all(b"\n")?;
                }
            }
            out.flush()?;
        }
    }
    Ok(())
}

pub(crate) async fn read(
    client: &Client,
    stream: &str,
    partition: u32,
    offset: Option<u64>,
    limit: usize,
) -> anyhow::Result<()> {
    let mut url = client.url(&format!(
        "/v1/streams/{stream}/partitions/{partition}/records?limit={limit}"
    ));
    if let Some(o) = offset {
        url.push_str(&format!("&offset={o}"));
    }
    let answer: ReadResponse = client.json(client.http().get(url)).await?;
    let mut out = std::io::stdout().lock();
    for record in &answer.records {
        serde_json::to_writer(&mut out, record)?;
        writeln!(out)?;
    }
    eprintln!("next offset: {}", answer.next_offset);
    Ok(())
}

/// `intake token create`: prints the new token's info and the token.
pub(crate) async fn create_token(
    client: &Client,
    name: &str,
    scopes: &[String],
    expires_in: Option<humantime::Duration>,
) -> anyhow::Result<()> {
    let mut body = serde_json::json!({ "name": name, "scopes": scopes });
    if let Some(d) = expires_in {
        body["expires_in_s"] = d.as_secs().into();
    }
    let created: serde_json::Value = client
        .json(client.http().post(client.url("/v1/tokens")).json(&body))
        .await?;
    print_json(&created)?;
    eprintln!("the token is shown once: keep it now");
    Ok(())
}

/// `intake token list`: one line per token.
pub(crate) async fn list_tokens(client: &Client) -> anyhow::Result<()> {
    let list: serde_json::Value = client
        .json(client.http().get(client.url("/v1/tokens")))
        .await?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<18} {:<24} {:<16} SCOPES",
        "ID", "NAME", "EXPIRES_AT_MS"
    )?;
    for t in list["tokens"].as_array().into_iter().flatten() {
        let scopes: Vec<&str> = t["scopes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(serde_json::Value::as_str)
            .collect();
        writeln!(
            out,
            "{:<18} {:<24} {:<16} {}",
            t["id"].as_str().unwrap_or("?"),
            t["name"].as_str().unwrap_or("?"),
            t["expires_at_ms"]
                .as_i64()
                .map_or_else(|| "never".to_owned(), |ms| ms.to_string()),
            scopes.join(" ")
        )?;
    }
    Ok(())
}

/// `intake token revoke`.
pub(crate) async fn revoke_token(client: &Client, id: &str) -> anyhow::Result<()> {
    client
        .send(
            client
                .http()
                .delete(client.url(&format!("/v1/tokens/{id}"))),
        )
        .await?;
    eprintln!("token {id} revoked");
    Ok(())
}
