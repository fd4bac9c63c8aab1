//! A small client of the native API for the CLI commands.

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

    /// Pushes NDJSON lines to a stream.
    pub(crate) async fn push_ndjson(
        &self,
        stream: &str,
        body: Bytes,
    ) -> anyhow::Result<AppendResponse> {
        let request = self
            .http
            .post(self.url(&format!("/v1/streams/{stream}/records")))
            .header("content-type", "application/x-ndjson")
            .body(body);
        self.json(request).await
    }
}
