//! Storage on SQLite (one file, zero setup) or PostgreSQL (several service replicas). The
//! operations are written once ([`engine!`] expands the same text for each engine's concrete
//! types: sqlx's generic bounds over `Database` cost more than they save) and dispatched by
//! [`Store`]. Every write runs in one transaction that also appends its row to the change log,
//! under a version taken from a one-row counter (`change_version`): the row lock is held to
//! commit, so versions are handed out in commit order on PostgreSQL too, and SQLite has one writer.

pub mod sql;

use std::time::Duration;

use serde_json::{Map, Value as Json};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::watch;

use crate::entity::{Entity, Field, Record};
use crate::error::ApiError;

/// How a row is found.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// The column and value: `id`, or an endpoint key.
    pub field: &'static Field,
    pub value: String,
    /// Only a row owned by this consumer (nested routes).
    pub consumer: Option<String>,
}

/// What a write does, decided from the row found (if any) inside the transaction.
#[derive(Debug)]
pub enum Write {
    /// POST: a new row (a taken id or unique value is a 409).
    Insert(Record),
    /// PUT: insert, or replace the row with this id.
    Put(Record),
    /// PATCH: change the row with this id.
    Update(Record),
    /// DELETE the row.
    Delete(Record),
    /// Nothing to do (DELETE of a missing row).
    Nothing,
}

/// One change of the log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    pub version: i64,
    /// The entity's DAO name (`consumers`, `keyauth_credentials`, ...).
    pub entity: String,
    pub entity_id: String,
    /// The consumer the change is about (itself, or a credential's owner): a follower re-reads
    /// that consumer. Deleting a consumer deletes its credentials in the same change.
    pub consumer_id: Option<String>,
    /// `insert` (POST), `upsert` (PUT), `update` (PATCH) or `delete`.
    pub op: String,
    pub at: i64,
}

/// A page of a list.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Rows after this id (the decoded `offset`).
    pub after: Option<String>,
    /// Rows to answer (one more is read to know whether another page follows).
    pub size: usize,
    pub consumer: Option<String>,
    pub custom_id: Option<String>,
    /// `?tags=`: the tags, and whether all must be present (`,`) or any (`/`).
    pub tags: Vec<String>,
    pub tags_all: bool,
}

/// Pool and timing settings.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    /// How long a request waits for a connection before answering 503.
    pub acquire_timeout: Duration,
    /// The longest a whole store operation may take before answering 503.
    pub operation_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
            operation_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The database, and the highest committed change version this process knows of.
#[derive(Debug, Clone)]
pub struct Store {
    pub db: Db,
    options: StoreOptions,
    version: watch::Sender<i64>,
}

/// A database URL this service cannot open.
#[derive(Debug)]
pub struct OpenError(pub String);

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Store {
    /// Open `url` (`sqlite://FILE`, created if missing, or `postgres://…`). No query runs: a
    /// PostgreSQL that is down now is tried again by each request.
    pub fn open(url: &str, options: StoreOptions) -> Result<Store, OpenError> {
        let db = if url.starts_with("sqlite:") {
            let connect: SqliteConnectOptions = url
                .parse::<SqliteConnectOptions>()
                .map_err(|e| OpenError(format!("--database: {e}")))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // WAL + NORMAL: a commit survives the process crashing; the last commits before a
                // power loss may not (SQLite's documented trade-off; PostgreSQL for more).
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
                // `?tags=` matches with LIKE: case-sensitive, as on PostgreSQL
                .pragma("case_sensitive_like", "ON");
            Db::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.acquire_timeout)
                    .connect_lazy_with(connect),
            )
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let connect: PgConnectOptions = url.parse().map_err(|e| OpenError(format!("--database: {e}")))?;
            Db::Postgres(
                PgPoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.acquire_timeout)
                    .connect_lazy_with(connect),
            )
        } else {
            return Err(OpenError("--database: expected a sqlite:// or postgres:// URL".into()));
        };
        let (version, _) = watch::channel(0);
        Ok(Store { db, options, version })
    }

    pub fn engine(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Apply the migrations of `migrations/<engine>/` not yet applied, and read the current version.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match &self.db {
            Db::Sqlite(p) => sqlx::migrate!("migrations/sqlite").run(p).await?,
            Db::Postgres(p) => sqlx::migrate!("migrations/postgres").run(p).await?,
        }
        if let Ok(v) = self.current_version().await {
            self.publish(v);
        }
        Ok(())
    }

    /// The highest committed version, as a `watch` channel: the change feed waits on it.
    pub fn versions(&self) -> watch::Receiver<i64> {
        self.version.subscribe()
    }

    fn publish(&self, version: i64) {
        self.version.send_if_modified(|v| {
            if version > *v {
                *v = version;
                true
            } else {
                false
            }
        });
    }

    async fn timed<T>(&self, f: impl std::future::Future<Output = Result<T, ApiError>>) -> Result<T, ApiError> {
        match tokio::time::timeout(self.options.operation_timeout, f).await {
            Ok(r) => r,
            Err(_) => Err(ApiError::Unavailable),
        }
    }

    pub async fn get(&self, entity: &'static Entity, lookup: &Lookup) -> Result<Option<Record>, ApiError> {
        self.timed(async {
            match &self.db {
                Db::Sqlite(p) => sqlite::get(p, entity, lookup).await,
                Db::Postgres(p) => postgres::get(p, entity, lookup).await,
            }
        })
        .await
    }

    pub async fn list(&self, entity: &'static Entity, q: &ListQuery) -> Result<Vec<Record>, ApiError> {
        self.timed(async {
            match &self.db {
                Db::Sqlite(p) => sqlite::list(p, entity, q).await,
                Db::Postgres(p) => postgres::list(p, entity, q).await,
            }
        })
        .await
    }

    /// One write in one transaction: the row `lookup` finds (locked until commit) is given to
    /// `decide`, which says what to write; the write and its change-log row commit together.
    /// Answers the row as stored (the deleted row for a delete; `None` when nothing changed).
    pub async fn write(
        &self,
        entity: &'static Entity,
        lookup: Option<&Lookup>,
        decide: impl FnOnce(Option<Record>) -> Result<Write, ApiError> + Send,
    ) -> Result<Option<Record>, ApiError> {
        let outcome = self
            .timed(async {
                match &self.db {
                    Db::Sqlite(p) => sqlite::write(p, entity, lookup, decide).await,
                    Db::Postgres(p) => postgres::write(p, entity, lookup, decide).await,
                }
            })
            .await?;
        match outcome {
            Outcome::Done(record, version) => {
                self.publish(version);
                Ok(record)
            }
            Outcome::Nothing => Ok(None),
            Outcome::Unique(record) => Err(self.timed(self.which_unique(&record)).await?),
        }
    }

    /// After a unique violation: which of the record's unique values is taken (read after the
    /// failed transaction, so that the 409 names the field as Kong's does).
    async fn which_unique(&self, record: &Record) -> Result<ApiError, ApiError> {
        match &self.db {
            Db::Sqlite(p) => sqlite::which_unique(p, record).await,
            Db::Postgres(p) => postgres::which_unique(p, record).await,
        }
    }

    pub async fn current_version(&self) -> Result<i64, ApiError> {
        self.timed(async {
            match &self.db {
                Db::Sqlite(p) => sqlite::current_version(p).await,
                Db::Postgres(p) => postgres::current_version(p).await,
            }
        })
        .await
    }

    /// `import`: every record written (inserted, or replacing a different row with its id) in
    /// one transaction, in batches of `batch_rows`; one change-log row per consumer whose
    /// consumer row or credentials changed (op `import`). Answers how many consumers changed.
    pub async fn import(
        &self,
        entities: &[(&'static Entity, Vec<Record>)],
        batch_rows: usize,
    ) -> Result<usize, String> {
        let result = match &self.db {
            Db::Sqlite(p) => sqlite::import(p, entities, batch_rows).await,
            Db::Postgres(p) => postgres::import(p, entities, batch_rows).await,
        };
        let (changed, version) = result.map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                "a username, custom_id, key or acl group in the file is already used by an entity with another id; nothing imported".to_string()
            }
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => "a credential's consumer is missing; nothing imported".to_string(),
            _ => format!("{}; nothing imported", db_error_text(&e)),
        })?;
        self.publish(version);
        Ok(changed)
    }

    /// The changes after `version`, oldest first, at most `limit`.
    pub async fn changes_since(&self, version: i64, limit: i64) -> Result<Vec<Change>, ApiError> {
        self.timed(async {
            match &self.db {
                Db::Sqlite(p) => sqlite::changes_since(p, version, limit).await,
                Db::Postgres(p) => postgres::changes_since(p, version, limit).await,
            }
        })
        .await
    }
}

/// What a write transaction ended with.
pub enum Outcome {
    Done(Option<Record>, i64),
    Nothing,
    /// A unique constraint refused the record (the transaction was rolled back).
    Unique(Record),
}

/// sqlx's errors as the API answers them: a database that cannot be reached (or is shutting
/// down, or busy past the timeout) is a 503; the rest is logged (no values) and a 500.
pub fn db_error(e: sqlx::Error) -> ApiError {
    match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => {
            tracing::warn!(error = %e, "database unavailable");
            ApiError::Unavailable
        }
        sqlx::Error::Database(d) => {
            let code = d.code().map(|c| c.to_string()).unwrap_or_default();
            // PostgreSQL: class 08 (connection), 57P0x (shutting down / starting), 53 (resources);
            // SQLite: 5 / 6 (busy / locked past busy_timeout).
            let unavailable = code.starts_with("08")
                || code.starts_with("57P")
                || code.starts_with("53")
                || code == "5"
                || code == "6"
                || code == "517";
            if unavailable {
                tracing::warn!(code, "database unavailable");
                ApiError::Unavailable
            } else {
                tracing::error!(code, kind = ?d.kind(), "database error");
                ApiError::Internal
            }
        }
        _ => {
            tracing::error!(error = %e, "database error");
            ApiError::Internal
        }
    }
}

/// A database error for an operator's terminal (`import`, `migrate`): its kind, never values.
fn db_error_text(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => format!("database error {}", d.code().unwrap_or_default()),
        other => other.to_string(),
    }
}

fn unique_fields(record: &Record) -> Vec<Vec<&'static Field>> {
    let e = record.entity;
    let mut sets: Vec<Vec<&'static Field>> = e.fields.iter().filter(|f| f.unique).map(|f| vec![f]).collect();
    if !e.unique_together.is_empty() {
        sets.push(e.unique_together.iter().filter_map(|n| e.field(n)).collect());
    }
    sets
}

fn unique_error(record: &Record, fields: &[&'static Field]) -> ApiError {
    let mut out = Map::new();
    for f in fields {
        out.insert(f.name.to_string(), crate::entity::validate::to_json(f, record.get(f.name)));
    }
    ApiError::Unique(out)
}

fn id_taken(record: &Record) -> ApiError {
    let mut out = Map::new();
    out.insert("id".into(), Json::String(record.id().to_string()));
    ApiError::Unique(out)
}

/// The operations, written once and expanded for each engine.
macro_rules! engine {
    ($module:ident, $db:ty, $pool:ty, begin = $begin:literal, lock = $lock:literal) => {
        mod $module {
            use sqlx::{Row, Executor};

            use super::{sql, db_error, id_taken, unique_error, unique_fields, Change, ListQuery, Lookup, Outcome, Write};
            use crate::entity::{now, Entity, Field, Record, Value};
            use crate::error::ApiError;

            type Query<'q> = sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>;
            type DbRow = <$db as sqlx::Database>::Row;

            fn bind<'q>(q: Query<'q>, field: &Field, value: &Value) -> Query<'q> {
                match (field.kind.is_integer(), value) {
                    (true, Value::Int(i)) => q.bind(*i),
                    (true, _) => q.bind(None::<i64>),
                    (false, Value::Text(s)) => q.bind(s.clone()),
                    (false, Value::Tags(t)) => q.bind(sql::encode_tags(t)),
                    (false, _) => q.bind(None::<String>),
                }
            }

            fn read(entity: &'static Entity, row: &DbRow) -> Result<Record, sqlx::Error> {
                let mut record = Record::empty(entity);
                for (i, (field, slot)) in entity.fields.iter().zip(record.values.iter_mut()).enumerate() {
                    *slot = if field.kind.is_integer() {
                        row.try_get::<Option<i64>, _>(i)?.map_or(Value::Null, Value::Int)
                    } else {
                        match row.try_get::<Option<String>, _>(i)? {
                            None => Value::Null,
                            Some(s) if field.kind == crate::entity::Kind::Tags => Value::Tags(sql::decode_tags(&s)),
                            Some(s) => Value::Text(s),
                        }
                    };
                }
                Ok(record)
            }

            fn select(entity: &'static Entity, lookup: &Lookup, suffix: &str) -> String {
                let mut where_ = format!("{} = $1", sql::quote(lookup.field.column));
                if lookup.consumer.is_some() {
                    where_.push_str(" AND \"consumer_id\" = $2");
                }
                if let Some(live) = sql::live(entity, if lookup.consumer.is_some() { 3 } else { 2 }) {
                    where_.push_str(" AND ");
                    where_.push_str(&live);
                }
                format!("SELECT {} FROM {} WHERE {where_}{suffix}", sql::columns(entity), entity.name)
            }

            fn select_query<'q>(text: &'q str, entity: &'static Entity, lookup: &Lookup) -> Query<'q> {
                let mut q = sqlx::query(text).bind(lookup.value.clone());
                if let Some(c) = &lookup.consumer {
                    q = q.bind(c.clone());
                }
                if entity.ttl().is_some() {
                    q = q.bind(now());
                }
                q
            }

            pub async fn get(pool: &$pool, entity: &'static Entity, lookup: &Lookup) -> Result<Option<Record>, ApiError> {
                let text = select(entity, lookup, "");
                let row = select_query(&text, entity, lookup).fetch_optional(pool).await.map_err(db_error)?;
                row.map(|r| read(entity, &r)).transpose().map_err(db_error)
            }

            pub async fn list(pool: &$pool, entity: &'static Entity, q: &ListQuery) -> Result<Vec<Record>, ApiError> {
                let mut conditions = vec!["\"id\" > $1".to_string()];
                let mut n = 1;
                let mut next = || {
                    n += 1;
                    n
                };
                let mut texts: Vec<String> = Vec::new();
                let mut ints: Vec<(usize, i64)> = Vec::new();
                if q.consumer.is_some() {
                    conditions.push(format!("\"consumer_id\" = ${}", next()));
                    texts.extend(q.consumer.clone());
                }
                if q.custom_id.is_some() {
                    conditions.push(format!("\"custom_id\" = ${}", next()));
                    texts.extend(q.custom_id.clone());
                }
                if !q.tags.is_empty() {
                    let parts: Vec<String> =
                        q.tags.iter().map(|_| format!("\"tags\" LIKE ${} ESCAPE '\\'", next())).collect();
                    conditions.push(format!("({})", parts.join(if q.tags_all { " AND " } else { " OR " })));
                    texts.extend(q.tags.iter().map(|t| sql::tag_pattern(t)));
                }
                if entity.ttl().is_some() {
                    let p = next();
                    conditions.extend(sql::live(entity, p));
                    ints.push((p, now()));
                }
                let limit = next();
                let text = format!(
                    "SELECT {} FROM {} WHERE {} ORDER BY \"id\" LIMIT ${limit}",
                    sql::columns(entity),
                    entity.name,
                    conditions.join(" AND ")
                );
                let mut query = sqlx::query(&text).bind(q.after.clone().unwrap_or_default());
                for t in texts {
                    query = query.bind(t);
                }
                for (_, i) in ints {
                    query = query.bind(i);
                }
                query = query.bind(i64::try_from(q.size).unwrap_or(1000).saturating_add(1));
                let rows = query.fetch_all(pool).await.map_err(db_error)?;
                rows.iter().map(|r| read(entity, r)).collect::<Result<_, _>>().map_err(db_error)
            }

            async fn execute<'c, E: Executor<'c, Database = $db>>(
                conn: E,
                text: &str,
                entity: &'static Entity,
                record: &Record,
            ) -> Result<u64, sqlx::Error> {
                let mut q = sqlx::query(text);
                for (field, value) in record.fields() {
                    q = bind(q, field, value);
                }
                let _ = entity;
                Ok(q.execute(conn).await?.rows_affected())
            }

            pub async fn write(
                pool: &$pool,
                entity: &'static Entity,
                lookup: Option<&Lookup>,
                decide: impl FnOnce(Option<Record>) -> Result<Write, ApiError>,
            ) -> Result<Outcome, ApiError> {
                let mut tx = pool.begin_with($begin).await.map_err(db_error)?;
                let current = match lookup {
                    Some(l) => {
                        let text = select(entity, l, $lock);
                        let row = select_query(&text, entity, l).fetch_optional(&mut *tx).await.map_err(db_error)?;
                        row.map(|r| read(entity, &r)).transpose().map_err(db_error)?
                    }
                    None => None,
                };
                let write = decide(current)?;
                let (op, record, result) = match write {
                    Write::Nothing => return Ok(Outcome::Nothing),
                    Write::Insert(r) => {
                        let expired = delete_expired(&mut tx, &r).await;
                        let res = match expired {
                            Ok(()) => execute(&mut *tx, &sql::insert(entity), entity, &r).await,
                            Err(e) => Err(e),
                        };
                        ("insert", r, res)
                    }
                    Write::Put(r) => {
                        let expired = delete_expired(&mut tx, &r).await;
                        let res = match expired {
                            Ok(()) => execute(&mut *tx, &sql::upsert(entity), entity, &r).await,
                            Err(e) => Err(e),
                        };
                        ("upsert", r, res)
                    }
                    Write::Update(r) => {
                        let text = sql::update(entity);
                        let mut q = sqlx::query(&text).bind(r.id().to_string());
                        for f in sql::update_fields(entity) {
                            q = bind(q, f, r.get(f.name));
                        }
                        let res = q.execute(&mut *tx).await.map(|d| d.rows_affected());
                        ("update", r, res)
                    }
                    Write::Delete(r) => {
                        let text = format!("DELETE FROM {} WHERE \"id\" = $1", entity.name);
                        let res = sqlx::query(&text).bind(r.id().to_string()).execute(&mut *tx).await.map(|d| d.rows_affected());
                        ("delete", r, res)
                    }
                };
                match result {
                    Ok(_) => {}
                    Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                        drop(tx);
                        return Ok(Outcome::Unique(record));
                    }
                    Err(sqlx::Error::Database(d)) if d.is_foreign_key_violation() => {
                        return Err(ApiError::ForeignKey {
                            field: "consumer",
                            id: record.consumer_id().unwrap_or_default().to_string(),
                        });
                    }
                    Err(e) => return Err(db_error(e)),
                }
                let consumer = record.consumer_id().unwrap_or(record.id()).to_string();
                let version = log_change(&mut tx, entity.name, record.id(), &consumer, op).await.map_err(db_error)?;
                tx.commit().await.map_err(db_error)?;
                Ok(Outcome::Done(Some(record), version))
            }

            /// A unique value held by an expired key-auth row frees it (Kong deletes expired rows
            /// lazily); the deletion is a change of its own.
            async fn delete_expired(tx: &mut sqlx::Transaction<'static, $db>, record: &Record) -> Result<(), sqlx::Error> {
                let entity = record.entity;
                let Some(ttl) = entity.ttl() else { return Ok(()) };
                for f in entity.fields.iter().filter(|f| f.unique) {
                    let Value::Text(v) = record.get(f.name) else { continue };
                    let text = format!(
                        "DELETE FROM {} WHERE {} = $1 AND {c} IS NOT NULL AND {c} <= $2 RETURNING \"id\", \"consumer_id\"",
                        entity.name,
                        sql::quote(f.column),
                        c = sql::quote(ttl.column)
                    );
                    let rows = sqlx::query(&text).bind(v.clone()).bind(now()).fetch_all(&mut **tx).await?;
                    for row in rows {
                        let id: String = row.try_get(0)?;
                        let consumer: String = row.try_get(1)?;
                        log_change(tx, entity.name, &id, &consumer, "delete").await?;
                    }
                }
                Ok(())
            }

            /// The next version (the counter row stays locked until commit) and its log row.
            pub async fn log_change(
                tx: &mut sqlx::Transaction<'static, $db>,
                entity: &str,
                id: &str,
                consumer: &str,
                op: &str,
            ) -> Result<i64, sqlx::Error> {
                let version: i64 =
                    sqlx::query_scalar("UPDATE change_version SET version = version + 1 RETURNING version")
                        .fetch_one(&mut **tx)
                        .await?;
                sqlx::query(
                    "INSERT INTO change_log (version, entity, entity_id, consumer_id, op, at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(version)
                .bind(entity.to_string())
                .bind(id.to_string())
                .bind(consumer.to_string())
                .bind(op.to_string())
                .bind(now())
                .execute(&mut **tx)
                .await?;
                Ok(version)
            }

            pub async fn which_unique(pool: &$pool, record: &Record) -> Result<ApiError, ApiError> {
                let entity = record.entity;
                for set in unique_fields(record) {
                    if set.iter().any(|f| *record.get(f.name) == Value::Null) {
                        continue;
                    }
                    let conditions: Vec<String> =
                        set.iter().enumerate().map(|(i, f)| format!("{} = ${}", sql::quote(f.column), i + 2)).collect();
                    let text = format!(
                        "SELECT \"id\" FROM {} WHERE \"id\" <> $1 AND {} LIMIT 1",
                        entity.name,
                        conditions.join(" AND ")
                    );
                    let mut q = sqlx::query(&text).bind(record.id().to_string());
                    for f in &set {
                        q = bind(q, f, record.get(f.name));
                    }
                    if q.fetch_optional(pool).await.map_err(db_error)?.is_some() {
                        return Ok(unique_error(record, &set));
                    }
                }
                Ok(id_taken(record))
            }

            pub async fn import(
                pool: &$pool,
                entities: &[(&'static Entity, Vec<Record>)],
                batch_rows: usize,
            ) -> Result<(usize, i64), sqlx::Error> {
                let mut tx = pool.begin_with($begin).await?;
                let mut changed = std::collections::BTreeSet::new();
                for (entity, records) in entities {
                    let mut full_batch: Option<String> = None;
                    for chunk in records.chunks(batch_rows.max(1)) {
                        let text = if chunk.len() == batch_rows {
                            full_batch.get_or_insert_with(|| sql::import_upsert(entity, batch_rows)).clone()
                        } else {
                            sql::import_upsert(entity, chunk.len())
                        };
                        let mut q = sqlx::query(&text);
                        for r in chunk {
                            for (f, v) in r.fields() {
                                q = bind(q, f, v);
                            }
                        }
                        for row in q.fetch_all(&mut *tx).await? {
                            changed.insert(row.try_get::<String, _>(1)?);
                        }
                    }
                }
                let n = i64::try_from(changed.len()).unwrap_or(i64::MAX);
                let mut version: i64 = sqlx::query_scalar("SELECT version FROM change_version").fetch_one(&mut *tx).await?;
                if n > 0 {
                    let last: i64 = sqlx::query_scalar("UPDATE change_version SET version = version + $1 RETURNING version")
                        .bind(n)
                        .fetch_one(&mut *tx)
                        .await?;
                    let mut v = last - n;
                    let at = now();
                    let ids: Vec<String> = changed.into_iter().collect();
                    for chunk in ids.chunks(1000) {
                        let values: Vec<String> = (0..chunk.len())
                            .map(|i| format!("(${}, 'consumers', ${}, ${}, 'import', ${})", i * 4 + 1, i * 4 + 2, i * 4 + 3, i * 4 + 4))
                            .collect();
                        let text = format!(
                            "INSERT INTO change_log (version, entity, entity_id, consumer_id, op, at) VALUES {}",
                            values.join(", ")
                        );
                        let mut q = sqlx::query(&text);
                        for id in chunk {
                            v += 1;
                            q = q.bind(v).bind(id.clone()).bind(id.clone()).bind(at);
                        }
                        q.execute(&mut *tx).await?;
                    }
                    version = last;
                }
                tx.commit().await?;
                Ok((usize::try_from(n).unwrap_or(0), version))
            }

            pub async fn current_version(pool: &$pool) -> Result<i64, ApiError> {
                sqlx::query_scalar("SELECT version FROM change_version").fetch_one(pool).await.map_err(db_error)
            }

            pub async fn changes_since(pool: &$pool, version: i64, limit: i64) -> Result<Vec<Change>, ApiError> {
                let rows = sqlx::query(
                    "SELECT version, entity, entity_id, consumer_id, op, at FROM change_log WHERE version > $1 ORDER BY version LIMIT $2",
                )
                .bind(version)
                .bind(limit)
                .fetch_all(pool)
                .await
                .map_err(db_error)?;
                rows.iter()
                    .map(|r| {
                        Ok(Change {
                            version: r.try_get(0)?,
                            entity: r.try_get(1)?,
                            entity_id: r.try_get(2)?,
                            consumer_id: r.try_get(3)?,
                            op: r.try_get(4)?,
                            at: r.try_get(5)?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(db_error)
            }
        }
    };
}

// SQLite: `BEGIN IMMEDIATE` takes the write lock up front (a read-then-write transaction would
// otherwise fail to upgrade under contention); one writer, so no row lock is needed.
engine!(sqlite, sqlx::Sqlite, sqlx::SqlitePool, begin = "BEGIN IMMEDIATE", lock = "");
engine!(postgres, sqlx::Postgres, sqlx::PgPool, begin = "BEGIN", lock = " FOR UPDATE");
