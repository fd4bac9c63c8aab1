//! The catalog: stream definitions in SQL, through sqlx's `Any` driver so the
//! same statements serve the embedded SQLite file and a shared PostgreSQL.
//!
//! A definition is stored as its JSON text: new fields need no migration,
//! and the API's shape is the storage shape.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use intake_format::api::{StreamDefinition, StreamState};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};

use crate::auth::TokenInfo;
use crate::error::{Error, Result};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS intake_streams (
        name TEXT PRIMARY KEY,
        definition TEXT NOT NULL,
        state TEXT NOT NULL,
        version BIGINT NOT NULL,
        updated_at_ms BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS intake_tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        secret_sha256 TEXT NOT NULL,
        scopes TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL,
        expires_at_ms BIGINT NOT NULL
    )",
];

/// A handle on the catalog database.
#[derive(Debug, Clone)]
pub struct Catalog {
    pool: AnyPool,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn state_text(state: StreamState) -> &'static str {
    match state {
        StreamState::Active => "active",
        StreamState::Paused => "paused",
    }
}

/// How long a catalog call waits for a connection. A database that cannot
/// be reached within it is reported at once (503 `catalog_unavailable`, a
/// not-ready `/readyz`) rather than holding requests until their own
/// timeout: sqlx's default is 30 s, the request timeout's too.
const CATALOG_TIMEOUT: Duration = Duration::from_secs(5);

impl Catalog {
    /// Connects (creating the SQLite file if needed) and creates the tables.
    ///
    /// # Errors
    /// [`Error::Catalog`] when the database cannot be reached.
    pub async fn connect(url: &str) -> Result<Self> {
        install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        let pool = AnyPoolOptions::new()
            // SQLite allows one writer; a single connection avoids
            // "database is locked" between our own connections.
            .max_connections(if sqlite { 1 } else { 8 })
            .acquire_timeout(CATALOG_TIMEOUT)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        use sqlx::Executor;
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        for statement in SCHEMA {
            sqlx::query(statement).execute(&pool).await?;
        }
        Ok(Self { pool })
    }

    /// Checks the database answers.
    ///
    /// # Errors
    /// [`Error::Catalog`].
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn decode(definition: &str, state: &str) -> Result<StreamDefinition> {
        let mut def: StreamDefinition = serde_json::from_str(definition).map_err(|e| {
            Error::definition("catalog", format!("stored definition does not parse: {e}"))
        })?;
        def.state = if state == "paused" {
            StreamState::Paused
        } else {
            StreamState::Active
        };
        Ok(def)
    }

    /// Every stream, by name.
    ///
    /// # Errors
    /// [`Error::Catalog`].
    pub async fn list(&self) -> Result<Vec<StreamDefinition>> {
        let rows = sqlx::query("SELECT definition, state FROM intake_streams ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Self::decode(&row.try_get::<String, _>(0)?, &row.try_get::<String, _>(1)?))
            .collect()
    }

    /// One stream.
    ///
    /// # Errors
    /// [`Error::Catalog`].
    pub async fn get(&self, name: &str) -> Result<Option<StreamDefinition>> {
        let row = sqlx::query("SELECT definition, state FROM intake_streams WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| Self::decode(&row.try_get::<String, _>(0)?, &row.try_get::<String, _>(1)?))
            .transpose()
    }

    /// Inserts a new stream.
    ///
    /// # Errors
    /// [`Error::StreamExists`] when the name is taken, [`Error::Catalog`].
    pub async fn insert(&self, def: &StreamDefinition) -> Result<()> {
        let json = serde_json::to_string(def)
            .map_err(|e| Error::definition("definition", e.to_string()))?;
        let result = sqlx::query(
            "INSERT INTO intake_streams (name, definition, state, version, updated_at_ms)
             VALUES ($1, $2, $3, 1, $4) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&def.name)
        .bind(json)
        .bind(state_text(def.state))
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        if result.rows_affected() == 0 {
            return Err(Error::StreamExists {
                name: def.name.clone(),
            });
        }
        Ok(())
    }

    /// Replaces a stream's definition (state included).
    ///
    /// # Errors
    /// [`Error::StreamNotFound`], [`Error::Catalog`].
    pub async fn update(&self, def: &StreamDefinition) -> Result<()> {
        let json = serde_json::to_string(def)
            .map_err(|e| Error::definition("definition", e.to_string()))?;
        let result = sqlx::query(
            "UPDATE intake_streams SET definition = $1, state = $2, version = version + 1, updated_at_ms = $3
             WHERE name = $4",
        )
        .bind(json)
        .bind(state_text(def.state))
        .bind(now_ms())
        .bind(&def.name)
        .execute(&self.pool)
        .await?;
        if result.rows_affected() == 0 {
            return Err(Error::StreamNotFound {
                name: def.name.clone(),
            });
        }
        Ok(())
    }

    /// Deletes a stream; false when there was none.
    ///
    /// # Errors
    /// [`Error::Catalog`].
    pub async fn delete(&self, name: &str) -> Result<bool> {
        let result = sqlx::query("DELETE FROM intake_streams WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Stores a token: its info and the SHA-256 of its secret.
    ///
    /// # Errors
    /// [`Error::Catalog`].
    pub async fn insert_token(&self, info: &TokenInfo, secret_sha256: &str) -> Result<()> {
        let scopes = serde_json::to_string(&info.scopes)
            .map_err(|e| Error::definition("scopes", e.to_string()))?;
        sqlx::query(
            "INSERT INTO intake_tokens (id, name, secret_sha256, scopes, created_at_ms, expires_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&info.id)
        .bind(&info.name)
        .bind(secret_sha256)
        .bind(scopes)
        .bind(info.created_at_ms)
        .bind(info.expires_at_ms.unwrap_or(0))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every token, oldest first, with the hashes of their secrets.
    ///
    /// # Errors
    /// [`Error::Catalog`].
    pub async fn tokens(&self) -> Result<Vec<(TokenInfo, String)>> {
        let rows = sqlx::query(
            "SELECT id, name, secret_sha256, scopes, created_at_ms, expires_at_ms
             FROM intake_tokens ORDER BY created_at_ms, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let scopes: String = row.try_get(3)?;
                let expires: i64 = row.try_get(5)?;
                let info = TokenInfo {
                    id: row.try_get(0)?,
                    name: row.try_get(1)?,
                    scopes: serde_json::from_str(&scopes).map_err(|e| {
                        Error::definition("catalog", format!("stored scopes do not parse: {e}"))
                    })?,
                    created_at_ms: row.try_get(4)?,
                    expires_at_ms: (expires != 0).then_some(expires),
                };
                Ok((info, row.try_get(2)?))
            })
            .collect()
    }

    /// Deletes a token; false when there was none.
    ///
    /// # Errors
    /// [`Error::Catalog`].
    pub async fn delete_token(&self, id: &str) -> Result<bool> {
        let result = sqlx::query("DELETE FROM intake_tokens WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
