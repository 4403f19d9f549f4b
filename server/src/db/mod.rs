//! Database pools and migrations for both engines: SQLite (embedded default, WAL) and
//! PostgreSQL (selected by a `postgres://` URL). Queries are written once, with `$n`
//! placeholders and portable types (TEXT dates, integer flags), and run through sqlx's `Any`
//! driver on either engine.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// Which engine a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// The store's connection pools. On SQLite all writes go through a single connection (one
/// writer at a time, as SQLite wants it) while reads use several; on PostgreSQL both are the
/// same pool.
#[derive(Clone, Debug)]
pub struct Db {
    pub engine: Engine,
    read: AnyPool,
    write: AnyPool,
    /// A streaming replica of the primary (PostgreSQL, `serve --database-read`): reads of
    /// requests that need not see their own session's latest writes go there (see [`route`]).
    replica: Option<AnyPool>,
}

/// Where the reads of the request being served go when a replica is configured. Every request
/// runs inside [`route::scope`]: a request that writes (any method but GET, HEAD and OPTIONS)
/// reads from the primary, and so does every request of a session that wrote within
/// [`route::READ_YOUR_WRITES_SECS`] (its `sessions.wrote_at`, set after each of its writes),
/// so a page never misses its own save. Work outside a request (batch checks) reads the
/// replica.
pub mod route {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    /// How long after a write a session's reads stay on the primary: far above the lag of a
    /// healthy streaming replica (milliseconds on a LAN).
    pub const READ_YOUR_WRITES_SECS: i64 = 10;

    /// The routing of one request.
    #[derive(Debug, Default)]
    pub struct Route {
        primary: AtomicBool,
        session: Mutex<Option<String>>,
    }

    tokio::task_local! {
        static ROUTE: Arc<Route>;
    }

    /// Runs a request's future with its routing: `primary` from the start (a write request)
    /// or not. Returns the session (token hash) that the request was made under, if any.
    pub async fn scope<F: std::future::Future>(primary: bool, f: F) -> (F::Output, Option<String>) {
        let route = Arc::new(Route {
            primary: AtomicBool::new(primary),
            session: Mutex::new(None),
        });
        let out = ROUTE.scope(route.clone(), f).await;
        let session = route.session.lock().ok().and_then(|s| s.clone());
        (out, session)
    }

    /// The request's session is known (`wrote_recently`: it wrote a moment ago, so its reads
    /// go to the primary).
    pub fn note_session(token_hash: &str, wrote_recently: bool) {
        let _ = ROUTE.try_with(|r| {
            if wrote_recently {
                r.primary.store(true, Ordering::Relaxed);
            }
            if let Ok(mut s) = r.session.lock() {
                *s = Some(token_hash.to_string());
            }
        });
    }

    /// Whether the current request reads from the primary (false outside a request).
    pub fn to_primary() -> bool {
        ROUTE
            .try_with(|r| r.primary.load(Ordering::Relaxed))
            .unwrap_or(false)
    }
}

static MIGRATE_SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static MIGRATE_POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The SQLite URL for the database file in a data directory.
pub fn sqlite_url(data_dir: &Path) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        data_dir.join("dangjian.db").display()
    )
}

impl Db {
    /// Connects to `url` (`sqlite://…` or `postgres://…`).
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let engine = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Engine::Postgres
        } else if url.starts_with("sqlite:") {
            Engine::Sqlite
        } else {
            anyhow::bail!("unsupported database URL (use sqlite:// or postgres://): {url}");
        };
        let options = AnyConnectOptions::from_str(url).context("parse database URL")?;
        match engine {
            Engine::Sqlite => {
                if let Some(path) = sqlite_file(url) {
                    create_private(&path)?;
                }
                let write = AnyPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(|c, _| Box::pin(sqlite_pragmas(c)))
                    .connect_with(options.clone())
                    .await
                    .with_context(|| format!("open SQLite database {url}"))?;
                let read = AnyPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(|c, _| Box::pin(sqlite_pragmas(c)))
                    .connect_with(options)
                    .await?;
                Ok(Db {
                    engine,
                    read,
                    write,
                    replica: None,
                })
            }
            Engine::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(options)
                    .await
                    .context("connect to PostgreSQL")?;
                Ok(Db {
                    engine,
                    read: pool.clone(),
                    write: pool,
                    replica: None,
                })
            }
        }
    }

    /// Adds a streaming replica of the primary (`postgres://…`, read-only) for reads.
    pub async fn with_replica(mut self, url: &str) -> anyhow::Result<Db> {
        if self.engine != Engine::Postgres
            || !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            anyhow::bail!("--database-read needs a PostgreSQL primary and a postgres:// replica");
        }
        let options = AnyConnectOptions::from_str(url).context("parse replica URL")?;
        let pool = AnyPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .context("connect to the PostgreSQL replica")?;
        self.replica = Some(pool);
        Ok(self)
    }

    /// Whether reads may go to a replica.
    pub fn has_replica(&self) -> bool {
        self.replica.is_some()
    }

    /// Applies pending migrations of this engine's set.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.engine {
            Engine::Sqlite => &MIGRATE_SQLITE,
            Engine::Postgres => &MIGRATE_POSTGRES,
        };
        migrator
            .run(&self.write)
            .await
            .context("apply migrations")?;
        Ok(())
    }

    /// The pool for reads: the replica when there is one and the current request need not
    /// see its session's latest writes ([`route`]), else the primary's read pool.
    pub fn read(&self) -> &AnyPool {
        match &self.replica {
            Some(replica) if !route::to_primary() => replica,
            _ => &self.read,
        }
    }

    /// The pool for single statements that write, or that must see the latest writes (on
    /// SQLite its one writer connection).
    pub fn write(&self) -> &AnyPool {
        &self.write
    }

    /// The pool that sees every committed write at once: the primary on PostgreSQL, the read
    /// pool on SQLite (the same file). For what must be current whatever the replica says:
    /// sessions, jobs, the audit head.
    pub fn primary(&self) -> &AnyPool {
        match self.engine {
            Engine::Sqlite => &self.read,
            Engine::Postgres => &self.write,
        }
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        self.write.begin().await
    }

    pub async fn close(&self) {
        if let Some(r) = &self.replica {
            r.close().await;
        }
        self.read.close().await;
        self.write.close().await;
    }
}

/// A SQLite database filled from nothing in one transaction (`demo`): a copy of its file,
/// opened on a single connection without a journal, and moved over the original once the
/// transaction has committed and the copy is on disk.
///
/// Through the WAL every page of a million members (1.5 GB) was written twice: into the WAL
/// at the commit, then into the database by the checkpoint that followed it. Without a
/// journal each page is written once. A crash before [`Scratch::finish`] leaves the original
/// file as it was (a copy without a journal may be torn, which is why it is a copy).
pub struct Scratch {
    db: Db,
    path: PathBuf,
    target: PathBuf,
}

impl Scratch {
    /// Copies the SQLite database `db` of `url` (`VACUUM INTO`: consistent whatever its WAL
    /// holds), closes `db` and opens the copy.
    pub async fn open(db: Db, url: &str) -> anyhow::Result<Scratch> {
        let target = match (db.engine, sqlite_file(url)) {
            (Engine::Sqlite, Some(target)) => target,
            _ => anyhow::bail!("not a SQLite database file: {url}"),
        };
        let path = PathBuf::from(format!("{}.building", target.display()));
        // A copy left by a build that crashed; the new one is made empty and private (0600)
        // for `VACUUM INTO` to fill.
        let _ = std::fs::remove_file(&path);
        create_private(&path)?;
        sqlx::query("VACUUM INTO $1")
            .bind(path.display().to_string())
            .execute(db.write())
            .await
            .with_context(|| format!("copy the database to {}", path.display()))?;
        // The original's WAL merged into it, so that `finish`, which removes the WAL before it
        // moves the copy into place, loses nothing of it if it stops in between.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(db.write())
            .await?;
        // `close` returns once every connection's handle is closed (sqlx's SQLite worker closes
        // it before confirming). Its WAL may stay behind; `finish` removes it with the file.
        db.close().await;
        let options = AnyConnectOptions::from_str(&format!("sqlite://{}", path.display()))?;
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(|c, _| {
                Box::pin(async move {
                    c.execute(
                        "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; \
                         PRAGMA locking_mode=EXCLUSIVE; PRAGMA foreign_keys=ON;",
                    )
                    .await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .with_context(|| format!("open {}", path.display()))?;
        Ok(Scratch {
            db: Db {
                engine: Engine::Sqlite,
                read: pool.clone(),
                write: pool,
                replica: None,
            },
            path,
            target,
        })
    }

    /// The copy, one connection for reads and writes.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Closes the copy, writes it to disk and moves it over the original.
    pub async fn finish(self) -> anyhow::Result<()> {
        self.db.close().await;
        std::fs::File::open(&self.path)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("sync {}", self.path.display()))?;
        // The original's WAL and its index must not outlive it: its frames are in the copy
        // already, and applied to the copy they would corrupt it.
        let _ = std::fs::remove_file(format!("{}-shm", self.target.display()));
        let _ = std::fs::remove_file(format!("{}-wal", self.target.display()));
        std::fs::rename(&self.path, &self.target)
            .with_context(|| format!("move {} into place", self.path.display()))?;
        if let Some(dir) = self.target.parent() {
            std::fs::File::open(dir).and_then(|d| d.sync_all())?;
        }
        Ok(())
    }

    /// Removes the copy after a failure, leaving the original as it was.
    pub async fn abandon(self) {
        self.db.close().await;
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The file of a `sqlite://PATH?…` URL (none for in-memory databases).
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    (!path.is_empty() && !path.contains(":memory:")).then(|| std::path::PathBuf::from(path))
}

/// Creates the database file readable by its owner only (0600) before SQLite opens it, and
/// narrows an existing one and its `-wal` and `-shm` files, which SQLite creates with the
/// database's own mode: the database holds personal data, sealed or not.
fn create_private(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if !path.exists() {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("create {}", path.display()))?;
        }
        for suffix in ["", "-wal", "-shm"] {
            let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
            if let Ok(meta) = std::fs::metadata(&file) {
                if meta.permissions().mode() & 0o077 != 0 {
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                        .with_context(|| format!("restrict {}", file.display()))?;
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Pages of SQLite's cache for a bulk write (`demo`, an import's confirmation): 1 GiB, in
/// KiB as `cache_size` takes a negative value. With the default 2 MiB, a transaction inserting
/// hundreds of thousands of rows into indexes of random keys (blind indexes, sort keys) spills
/// its dirty pages to the WAL and reads them back for every insert, which made building a
/// province grow worse than linearly with its size. Only the pages used are allocated.
const BULK_CACHE_KIB: i64 = 1024 * 1024;

/// Widens the page cache of the connection a bulk transaction runs on (SQLite; PostgreSQL's
/// buffers are the server's). Call [`narrow_cache`] once it has committed.
pub async fn widen_cache(tx: &mut Tx, engine: Engine) -> Result<(), sqlx::Error> {
    if engine == Engine::Sqlite {
        sqlx::query(&format!("PRAGMA cache_size = -{BULK_CACHE_KIB}"))
            .execute(&mut **tx)
            .await?;
        // A helper thread for the sorts of `CREATE INDEX` (`restore_indexes`).
        sqlx::query("PRAGMA threads = 2").execute(&mut **tx).await?;
    } else {
        // PostgreSQL: the sorts of `CREATE INDEX` (`restore_indexes`) in memory rather than
        // in temporary files (the default is 64 MB); for this transaction only.
        sqlx::query("SET LOCAL maintenance_work_mem = '1GB'")
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// For a bulk transaction that fills a fresh database (`demo`, after [`widen_cache`]; and an
/// import large enough to rebuild the members' indexes, `import::store::confirm`): SQLite
/// keeps every page it changes in memory until the commit instead of spilling pages to the
/// WAL when the cache is full. In a fresh database nearly every page is new, so a spill only
/// writes early what the commit would write anyway, then reads it back through the WAL's
/// index on every later touch; a million members are about 1.5 GB of pages.
pub async fn keep_dirty_pages(tx: &mut Tx, engine: Engine) -> Result<(), sqlx::Error> {
    if engine == Engine::Sqlite {
        sqlx::query("PRAGMA cache_spill = OFF")
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Builds the indexes `definitions` (from [`drop_indexes`]) inside a bulk transaction that
/// keeps its pages in memory ([`keep_dirty_pages`]). On SQLite the sorter's share of memory
/// follows `cache_size`: with the 1 GiB of [`widen_cache`] every index is sorted in one piece
/// on one thread, so the cache is narrowed while the indexes are built. The sorter then sorts
/// pieces on its helper thread (`PRAGMA threads`) while the main thread reads the table and
/// merges them, which takes about 40 % off building the members' indexes on two cores. No
/// page is lost: the changed pages cannot leave the cache until the commit.
pub async fn build_indexes(
    tx: &mut Tx,
    engine: Engine,
    definitions: &[String],
) -> Result<(), sqlx::Error> {
    if engine == Engine::Sqlite {
        sqlx::query("PRAGMA cache_size = -8192")
            .execute(&mut **tx)
            .await?;
    }
    restore_indexes(tx, definitions).await?;
    if engine == Engine::Sqlite {
        sqlx::query(&format!("PRAGMA cache_size = -{BULK_CACHE_KIB}"))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// After the bulk transaction has committed: gives the writer connection (SQLite has one)
/// its default cache again and frees the pages it no longer needs.
pub async fn narrow_cache(db: &Db) -> Result<(), sqlx::Error> {
    if db.engine == Engine::Sqlite {
        for pragma in [
            "PRAGMA cache_size = -2000",
            "PRAGMA threads = 0",
            "PRAGMA cache_spill = ON",
        ] {
            sqlx::query(pragma).execute(db.write()).await?;
        }
        sqlx::query("PRAGMA shrink_memory")
            .execute(db.write())
            .await?;
    }
    Ok(())
}

/// After a bulk load into `table` has committed (PostgreSQL): its planner statistics and its
/// visibility map, at once rather than when autovacuum comes round. Without statistics the
/// planner guesses at a table of a million rows it believes empty; without the visibility map
/// every count through an index still reads the table (a page of a subtree of 500,000 members
/// took 200 ms instead of 40). SQLite plans without statistics and needs neither.
pub async fn after_bulk_load(db: &Db, table: &str) -> Result<(), sqlx::Error> {
    if db.engine == Engine::Postgres {
        // Outside any transaction (VACUUM refuses to run in one); `table` is a constant.
        let sql = format!("VACUUM (ANALYZE) \"{table}\"");
        sqlx::Executor::execute(db.write(), sql.as_str()).await?;
    }
    Ok(())
}

/// The secondary indexes of `table` (not those of its primary key or constraints), as the
/// statements that create them.
pub async fn index_definitions(
    tx: &mut Tx,
    engine: Engine,
    table: &str,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let sql = match engine {
        Engine::Sqlite => {
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = $1 \
             AND sql IS NOT NULL ORDER BY name"
        }
        Engine::Postgres => {
            "SELECT ic.relname::text, pg_get_indexdef(i.indexrelid) FROM pg_index i \
             JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid \
             WHERE t.relname = $1 AND t.relnamespace = current_schema()::regnamespace \
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) \
             ORDER BY ic.relname"
        }
    };
    sqlx::query_as(sql).bind(table).fetch_all(&mut **tx).await
}

/// Drops the secondary indexes of `table` inside a bulk transaction that fills an empty table
/// (`demo`): building an index once from all rows (a sort) costs a fraction of keeping it
/// through every insert. Returns what [`restore_indexes`] recreates before the commit — unique
/// ones check every row then, so nothing is committed that they would have refused.
pub async fn drop_indexes(
    tx: &mut Tx,
    engine: Engine,
    table: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let defs = index_definitions(tx, engine, table).await?;
    for (name, _) in &defs {
        sqlx::query(&format!("DROP INDEX \"{name}\""))
            .execute(&mut **tx)
            .await?;
    }
    Ok(defs.into_iter().map(|(_, sql)| sql).collect())
}

/// Drops the triggers of `table` whose names start with `prefix` inside a bulk transaction that
/// fills an empty table, for a caller that then rebuilds what they maintain in one statement
/// (`demo` and the statistics tally). Returns what [`restore_indexes`] recreates before the
/// commit, so no other transaction ever sees the table without them.
pub async fn drop_triggers(
    tx: &mut Tx,
    engine: Engine,
    table: &str,
    prefix: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let sql = match engine {
        Engine::Sqlite => {
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = $1 \
             AND substr(name, 1, length($2)) = $2 ORDER BY name"
        }
        Engine::Postgres => {
            "SELECT t.tgname::text, pg_get_triggerdef(t.oid) FROM pg_trigger t \
             JOIN pg_class c ON c.oid = t.tgrelid \
             WHERE c.relname = $1 AND c.relnamespace = current_schema()::regnamespace \
             AND NOT t.tgisinternal AND substr(t.tgname::text, 1, length($2)) = $2 \
             ORDER BY t.tgname"
        }
    };
    let defs: Vec<(String, String)> = sqlx::query_as(sql)
        .bind(table)
        .bind(prefix)
        .fetch_all(&mut **tx)
        .await?;
    for (name, _) in &defs {
        let drop = match engine {
            Engine::Sqlite => format!("DROP TRIGGER \"{name}\""),
            Engine::Postgres => format!("DROP TRIGGER \"{name}\" ON \"{table}\""),
        };
        sqlx::query(&drop).execute(&mut **tx).await?;
    }
    Ok(defs.into_iter().map(|(_, sql)| sql).collect())
}

/// Drops the foreign keys of `table` inside a bulk transaction that fills an empty table
/// (`demo`, PostgreSQL): PostgreSQL checks a foreign key row by row, looking its parent up and
/// locking it each time; adding the key back before the commit checks every row in one join.
/// SQLite checks its foreign keys without locks and cannot suspend them inside a transaction:
/// nothing to do there. Returns what [`restore_indexes`] runs to add them back.
pub async fn drop_foreign_keys(
    tx: &mut Tx,
    engine: Engine,
    table: &str,
) -> Result<Vec<String>, sqlx::Error> {
    if engine == Engine::Sqlite {
        return Ok(Vec::new());
    }
    let defs: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.conname::text, pg_get_constraintdef(c.oid) FROM pg_constraint c \
         JOIN pg_class t ON t.oid = c.conrelid \
         WHERE t.relname = $1 AND t.relnamespace = current_schema()::regnamespace \
         AND c.contype = 'f' ORDER BY c.conname",
    )
    .bind(table)
    .fetch_all(&mut **tx)
    .await?;
    for (name, _) in &defs {
        sqlx::query(&format!(
            "ALTER TABLE \"{table}\" DROP CONSTRAINT \"{name}\""
        ))
        .execute(&mut **tx)
        .await?;
    }
    Ok(defs
        .into_iter()
        .map(|(name, def)| format!("ALTER TABLE \"{table}\" ADD CONSTRAINT \"{name}\" {def}"))
        .collect())
}

/// Recreates the indexes [`drop_indexes`] (or the triggers [`drop_triggers`]) dropped.
pub async fn restore_indexes(tx: &mut Tx, definitions: &[String]) -> Result<(), sqlx::Error> {
    for sql in definitions {
        sqlx::query(sql).execute(&mut **tx).await?;
    }
    Ok(())
}

async fn sqlite_pragmas(conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    conn.execute(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=10000;",
    )
    .await?;
    Ok(())
}

/// Current time as RFC 3339 UTC with seconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Today's date (UTC+8, the platform's calendar).
pub fn today() -> chrono::NaiveDate {
    (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive()
}

/// A new opaque identifier.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Flag columns are integers on both engines.
pub fn flag(b: bool) -> i64 {
    i64::from(b)
}

/// The exclusive upper bound of the range of codes that start with `prefix`: codes are made of
/// digits and upper-case letters, all of which sort below `~`.
pub fn subtree_upper(prefix: &str) -> String {
    format!("{prefix}~")
}

/// A PostgreSQL array literal (`{"a","b",NULL}`) built element by element, bound as one text
/// parameter and cast (`$1::text[]`): a bulk insert on PostgreSQL passes thousands of rows as
/// one array per column and unnests them (`member::bulk`, the real-name registry), where
/// thousands of separate parameters per statement cost the server more than the rows.
#[derive(Debug, Clone)]
pub struct ArrayLiteral(String);

impl Default for ArrayLiteral {
    fn default() -> Self {
        ArrayLiteral(String::from("{"))
    }
}

impl ArrayLiteral {
    fn separate(&mut self) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
    }

    pub fn push_text(&mut self, value: Option<&str>) {
        self.separate();
        match value {
            None => self.0.push_str("NULL"),
            Some(t) => {
                self.0.push('"');
                for c in t.chars() {
                    if c == '"' || c == '\\' {
                        self.0.push('\\');
                    }
                    self.0.push(c);
                }
                self.0.push('"');
            }
        }
    }

    pub fn push_int(&mut self, value: i64) {
        self.separate();
        self.0.push_str(&value.to_string());
    }

    pub fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

/// A bound value of a dynamically built statement.
#[derive(Debug, Clone)]
pub enum Arg {
    Text(String),
    Int(i64),
}

/// A statement built piece by piece whose `$n` placeholders are numbered as values are bound,
/// so that every engine sees exactly the parameters it uses.
#[derive(Debug, Clone, Default)]
pub struct Sql {
    pub text: String,
    pub args: Vec<Arg>,
    /// Anonymous `?` placeholders instead of `$n` ([`Sql::rows`] on SQLite).
    anonymous: bool,
}

/// The engine behind a connection (a transaction's, say).
pub fn engine_of(conn: &sqlx::AnyConnection) -> Engine {
    if conn.backend_name().eq_ignore_ascii_case("postgresql") {
        Engine::Postgres
    } else {
        Engine::Sqlite
    }
}

impl Sql {
    pub fn new(text: &str) -> Sql {
        Sql {
            text: text.to_string(),
            args: Vec::new(),
            anonymous: false,
        }
    }

    /// A statement of many bound values (a multi-row `INSERT`). SQLite gets anonymous `?`
    /// placeholders: it finds a named one (`$n`) by a linear scan, which makes binding the
    /// thousands of a multi-row statement quadratic (`member::bulk` says the same). Every value
    /// must be bound through [`Sql::bind`] in the order of the text, as the builder does.
    pub fn rows(engine: Engine, text: &str) -> Sql {
        Sql {
            anonymous: engine == Engine::Sqlite,
            ..Sql::new(text)
        }
    }

    fn placeholder(&mut self) {
        if self.anonymous {
            self.text.push('?');
        } else {
            self.text.push_str(&format!("${}", self.args.len()));
        }
    }

    /// Appends literal SQL.
    pub fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// Appends a placeholder bound to `v`.
    pub fn bind(&mut self, v: impl Into<String>) -> &mut Self {
        self.args.push(Arg::Text(v.into()));
        self.placeholder();
        self
    }

    pub fn bind_int(&mut self, v: i64) -> &mut Self {
        self.args.push(Arg::Int(v));
        self.placeholder();
        self
    }

    pub fn query(&self) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
        let mut q = sqlx::query(&self.text);
        for a in &self.args {
            q = match a {
                Arg::Text(s) => q.bind(s.clone()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q
    }

    pub fn query_as<T>(&self) -> sqlx::query::QueryAs<'_, sqlx::Any, T, sqlx::any::AnyArguments<'_>>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
    {
        let mut q = sqlx::query_as(&self.text);
        for a in &self.args {
            q = match a {
                Arg::Text(s) => q.bind(s.clone()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q
    }

    pub fn scalar<T>(
        &self,
    ) -> sqlx::query::QueryScalar<'_, sqlx::Any, T, sqlx::any::AnyArguments<'_>>
    where
        (T,): for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
    {
        let mut q = sqlx::query_scalar(&self.text);
        for a in &self.args {
            q = match a {
                Arg::Text(s) => q.bind(s.clone()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_or_anonymous() {
        let build = |mut sql: Sql| {
            sql.push("(").bind("a").push(", ").bind_int(2).push(")");
            (sql.text.clone(), sql.args.len())
        };
        assert_eq!(build(Sql::new("V ")), ("V ($1, $2)".to_string(), 2));
        assert_eq!(
            build(Sql::rows(Engine::Postgres, "V ")),
            ("V ($1, $2)".to_string(), 2)
        );
        assert_eq!(
            build(Sql::rows(Engine::Sqlite, "V ")),
            ("V (?, ?)".to_string(), 2)
        );
    }

    /// Anonymous placeholders bind in order on SQLite, through the `Any` driver.
    #[tokio::test]
    async fn anonymous_placeholders_bind_in_order_on_sqlite() {
        sqlx::any::install_default_drivers();
        let pool = AnyPool::connect("sqlite::memory:").await.unwrap();
        let mut conn = pool.acquire().await.unwrap();
        sqlx::query("CREATE TABLE t (a TEXT, n INTEGER)")
            .execute(&mut *conn)
            .await
            .unwrap();
        assert_eq!(engine_of(&conn), Engine::Sqlite);
        let mut sql = Sql::rows(engine_of(&conn), "INSERT INTO t (a, n) VALUES ");
        for i in 0..300 {
            if i > 0 {
                sql.push(", ");
            }
            sql.push("(")
                .bind(format!("r{i}"))
                .push(", ")
                .bind_int(i)
                .push(")");
        }
        sql.query().execute(&mut *conn).await.unwrap();
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT a, n FROM t ORDER BY n")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        assert_eq!(rows.len(), 300);
        assert!(rows.iter().all(|(a, n)| *a == format!("r{n}")));
    }
}
