//! Two nodes sharing one PostgreSQL catalog (127.0.0.1:5432, database
//! `test`, each test run in a schema of its own): a stream created, paused,
//! resumed or deleted on one reaches the other by catalog polling. Fails
//! when PostgreSQL is not running.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

use std::time::Duration;

use intake_core::{CoreConfig, Node};
use intake_format::api::{StreamDefinition, StreamState};
use sqlx::Executor;

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh schema, and the catalog URL that puts the tables in it.
async fn fresh_schema() -> String {
    let schema = format!("intake_test_{}", std::process::id());
    let pool = sqlx::postgres::PgPool::connect(POSTGRES)
        .await
        .expect("PostgreSQL must run on 127.0.0.1:5432 with database test");
    pool.execute(format!("DROP SCHEMA IF EXISTS {schema} CASCADE").as_str())
        .await
        .unwrap();
    pool.execute(format!("CREATE SCHEMA {schema}").as_str())
        .await
        .unwrap();
    format!("{POSTGRES}?options=-c%20search_path%3D{schema}")
}

fn config(dir: &std::path::Path, catalog: &str) -> CoreConfig {
    let mut config = CoreConfig::new(dir);
    config.catalog = Some(catalog.to_owned());
    config.catalog_poll_interval = Duration::from_millis(100);
    config
}

/// Waits up to 5 s for `check` to hold.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..100 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test]
async fn stream_changes_reach_every_node() {
    let catalog = fresh_schema().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Node::open(config(dir_a.path(), &catalog)).await.unwrap();
    let b = Node::open(config(dir_b.path(), &catalog)).await.unwrap();
    assert!(b.streams().is_empty());

    let mut def = StreamDefinition::new("orders");
    def.partitions = 3;
    a.create_stream(def).await.unwrap();
    eventually("b opens the stream a created", || {
        b.stream("orders").is_ok()
    })
    .await;
    assert_eq!(b.stream("orders").unwrap().definition().partitions, 3);
    assert!(b.stream("orders").unwrap().partition(2).is_ok());
    assert!(dir_b.path().join("streams/orders").is_dir());

    a.set_state("orders", StreamState::Paused).await.unwrap();
    eventually("b sees the pause", || {
        b.stream("orders").unwrap().state() == StreamState::Paused
    })
    .await;
    b.set_state("orders", StreamState::Active).await.unwrap();
    eventually("a sees the resume", || {
        a.stream("orders").unwrap().state() == StreamState::Active
    })
    .await;

    a.delete_stream("orders").await.unwrap();
    eventually("b drops the deleted stream", || b.stream("orders").is_err()).await;
    assert!(!dir_b.path().join("streams/orders").exists());

    // Restarting against the shared catalog opens what it holds.
    a.create_stream(StreamDefinition::new("later"))
        .await
        .unwrap();
    b.shutdown().await;
    let b = Node::open(config(dir_b.path(), &catalog)).await.unwrap();
    assert!(b.stream("later").is_ok());
    a.shutdown().await;
    b.shutdown().await;
}
