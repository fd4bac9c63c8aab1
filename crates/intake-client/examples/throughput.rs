//! Records/s into one node: through the SDK's batcher, or one record per
//! HTTP request (the way a client without batching sends).
//!
//! `throughput URL STREAM sdk|single [SECONDS] [CONCURRENCY]` prints one
//! line `MODE records/s N`. `bench/sdk.sh` runs both and prints the ratio.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use intake_client::{BatchConfig, Client};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, stream, mode, rest @ ..] = args.as_slice() else {
        eprintln!("usage: throughput URL STREAM sdk|single [SECONDS] [CONCURRENCY]");
        std::process::exit(2);
    };
    let seconds: u64 = rest.first().and_then(|s| s.parse().ok()).unwrap_or(10);
    let concurrency: usize = rest.get(1).and_then(|s| s.parse().ok()).unwrap_or(64);
    let client = Client::builder()
        .node(url.as_str())
        .build()
        .await
        .expect("client");
    // ~200-byte JSON records, as the other benchmarks send.
    let record = Bytes::from(format!(
        r#"{{"sensor":"s-000042","temp":21.5,"pad":"{}"}}"#,
        "x".repeat(150)
    ));
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let batcher = client.batcher(stream, BatchConfig::default());
    let mut tasks = Vec::new();
    // The batcher needs many records in flight to fill its batches; each
    // task waits for its record's ack before sending the next.
    let workers = if mode == "sdk" {
        concurrency * 16
    } else {
        concurrency
    };
    for _ in 0..workers {
        let (client, batcher, record, done, stream, mode) = (
            client.clone(),
            batcher.clone(),
            record.clone(),
            Arc::clone(&done),
            stream.clone(),
            mode.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let ok = if mode == "sdk" {
                    batcher.push(record.clone()).await.is_ok()
                } else {
                    client.send(&stream, vec![record.clone()]).await.is_ok()
                };
                assert!(ok, "a send failed");
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    for task in tasks {
        task.await.expect("worker");
    }
    let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    println!("{mode} records/s {rate:.0}");
}
