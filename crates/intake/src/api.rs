//! A small client of the native API for the CLI commands.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use intake_format::api::{AppendResponse, ErrorResponse};
use serde::de::DeserializeOwned;

/// A node's native API.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// A client of the node `target` names, with its token if any.
    pub(crate) fn for_target(target: &crate::Target) -> anyhow::Result<Self> {
        Self::new(&target.url, target.token.as_deref())
    }

    pub(crate) fn new(url: &str, token: Option<&str>) -> anyhow::Result<Self> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .context("the token is not valid header text")?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .default_headers(headers)
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            base: url.trim_end_matches('/').to_owned(),
            http,
        })
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends a request; a non-2xx answer becomes an error with the node's
    /// message.
    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        match serde_json::from_slice::<ErrorResponse>(&body) {
            Ok(e) => bail!("{} ({status}): {}", e.error.code, e.error.message),
            Err(_) => bail!("{status}: {}", String::from_utf8_lossy(&body)),
        }
    }

    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        let response = self.send(request).await?;
        response
            .json()
            .await
            .context("the node's answer is not the expected JSON")
    }

    /// Pushes NDJSON lines to a stream as request `sequence` of `producer`
    /// (`Intake-Producer-Id`, `Intake-Sequence`), sending it again, with
    /// the same sequence, while the node cannot be reached or answers 5xx
    /// or 429, for up to 30 s: a retry of a request the node stored is
    /// answered from its key table, so nothing is stored twice.
    pub(crate) async fn push_ndjson(
        &self,
        stream: &str,
        body: Bytes,
        producer: &str,
        sequence: u64,
    ) -> anyhow::Result<AppendResponse> {
        let deadline = Instant::now() + PUSH_RETRY_DEADLINE;
        let mut wait = Duration::from_millis(50);
        loop {
            let request = self
                .http
                .post(self.url(&format!("/v1/streams/{stream}/records")))
                .header("content-type", "application/x-ndjson")
                .header("intake-producer-id", producer)
                .header("intake-sequence", sequence)
                .body(body.clone());
            let failure = match request.send().await {
                Ok(response)
                    if response.status().is_server_error() || response.status().as_u16() == 429 =>
                {
                    let status = response.status();
                    let body = response.bytes().await.unwrap_or_default();
                    format!("{status}: {}", String::from_utf8_lossy(&body))
                }
                Ok(response) => {
                    let status = response.status();
                    let body = response.bytes().await.unwrap_or_default();
                    if status.is_success() {
                        return serde_json::from_slice(&body)
                            .context("the node's answer is not the expected JSON");
                    }
                    match serde_json::from_slice::<ErrorResponse>(&body) {
                        Ok(e) => bail!("{} ({status}): {}", e.error.code, e.error.message),
                        Err(_) => bail!("{status}: {}", String::from_utf8_lossy(&body)),
                    }
                }
                Err(e) => format!("cannot reach {}: {e}", self.base),
            };
            if Instant::now() + wait > deadline {
                bail!("gave up after {PUSH_RETRY_DEADLINE:?}: {failure}");
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
        }
    }
}

/// How long `intake push` sends a batch again before it gives up.
const PUSH_RETRY_DEADLINE: Duration = Duration::from_secs(30);
