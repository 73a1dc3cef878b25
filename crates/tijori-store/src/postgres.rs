//! The scale path: several tijori processes on one PostgreSQL.

use std::time::Duration;

use anyhow::Context as _;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres};

type Db = Postgres;
type DbStore = PgStore;

const BEGIN_WRITE: &str = "BEGIN";
/// NO KEY: rows that merely reference the locked one (a new payment) are not held up.
const LOCK_ROW: &str = " FOR NO KEY UPDATE";
/// Workers claiming jobs at once each skip the rows another is taking.
const SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";

// The same statements for both backends, compiled once for each: loading the file
// twice is the point.
#[allow(clippy::duplicate_mod)]
#[path = "queries.rs"]
mod queries;

pub struct PgStore {
    writer: PgPool,
    /// The same pool: PostgreSQL handles concurrent writers itself.
    reader: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await
            .context("failed to connect to PostgreSQL")?;
        Ok(PgStore {
            writer: pool.clone(),
            reader: pool,
        })
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        sqlx::migrate!("./migrations/postgres")
            .run(&self.writer)
            .await
            .context("failed to run PostgreSQL migrations")
    }

    pub async fn close(&self) {
        self.writer.close().await;
    }
}
