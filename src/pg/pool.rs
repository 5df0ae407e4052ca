//! The connections of a [`PgTracker`](super::PgTracker): one per thread
//! that uses it at once, each with its statements prepared once, and the
//! rule for a lost connection (reconnect and run the statement again, for
//! up to [`reconnect_within`](super::PgTracker::reconnect_within)).

use crate::error::{Error, ErrorKind, Result};
use postgres::error::SqlState;
use postgres::{Client, Config, NoTls, Statement};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One connection and the statements prepared on it (by SQL text).
pub(crate) struct Conn {
    client: Client,
    prepared: HashMap<&'static str, Statement>,
    /// The tracker's table of tasks, for `{t}` in statements.
    table: Arc<str>,
}

impl Conn {
    /// `sql`, prepared on this connection (once).
    pub(crate) fn statement(
        &mut self,
        sql: &'static str,
    ) -> std::result::Result<Statement, postgres::Error> {
        if let Some(statement) = self.prepared.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(&expand(sql, &self.table))?;
        self.prepared.insert(sql, statement.clone());
        Ok(statement)
    }

    /// The connection itself.
    pub(crate) fn client(&mut self) -> &mut Client {
        &mut self.client
    }
}

/// `sql` with its placeholders filled in: `{t}`, the tracker's table of
/// tasks (`tastypod_tasks_<id>`); `{max:N}`, the tracker's stored try
/// limit (`$N` if its row is gone).
pub(crate) fn expand(sql: &str, table: &str) -> String {
    let mut out = sql.replace("{t}", table);
    let id = table.rsplit('_').next().unwrap_or("0");
    for n in 1..=9 {
        let placeholder = format!("{{max:{n}}}");
        if out.contains(&placeholder) {
            out = out.replace(
                &placeholder,
                &format!(
                    "coalesce((SELECT max_tries FROM tastypod_trackers WHERE id = {id}), ${n}::bigint)"
                ),
            );
        }
    }
    out
}

/// What went wrong with a statement, as the retry rule sees it.
enum Failure {
    /// The connection is gone (or the server is restarting): reconnect and
    /// run the statement again.
    Connection,
    /// The server chose this transaction as a deadlock's victim, or it
    /// could not be serialized: run it again at once.
    Conflict,
    /// Anything else: the caller's error.
    Final,
}

fn failure(error: &postgres::Error) -> Failure {
    if error.is_closed() {
        return Failure::Connection;
    }
    match error.code() {
        Some(code) if code == &SqlState::T_R_DEADLOCK_DETECTED => Failure::Conflict,
        Some(code) if code == &SqlState::T_R_SERIALIZATION_FAILURE => Failure::Conflict,
        Some(code)
            if code.code().starts_with("08")
                || code == &SqlState::ADMIN_SHUTDOWN
                || code == &SqlState::CRASH_SHUTDOWN
                || code == &SqlState::CANNOT_CONNECT_NOW =>
        {
            Failure::Connection
        }
        Some(_) => Failure::Final,
        // No SQL state: an I/O error on the socket, or a protocol error.
        None => {
            if std::error::Error::source(error).is_some_and(|s| s.is::<std::io::Error>()) {
                Failure::Connection
            } else {
                Failure::Final
            }
        }
    }
}

/// The connections of one tracker.
pub(crate) struct Pool {
    config: Config,
    /// The URL without its password, for error messages.
    pub(crate) shown: String,
    idle: Mutex<Vec<Conn>>,
    pub(crate) reconnect_within: Duration,
    /// The tracker's table of tasks.
    pub(crate) table: Arc<str>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub(crate) fn new(config: Config, shown: String) -> Self {
        Pool {
            config,
            shown,
            idle: Mutex::new(Vec::new()),
            reconnect_within: Duration::from_secs(60),
            table: "".into(),
        }
    }

    /// How to connect.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// The error for `error`, met while doing `what`.
    pub(crate) fn error(&self, what: &str, error: postgres::Error) -> Error {
        ErrorKind::Database {
            url: self.shown.clone(),
            what: what.to_string(),
            code: error.code().map(|c| c.code().to_string()),
            source: Box::new(error),
        }
        .into()
    }

    fn connect(&self) -> std::result::Result<Conn, postgres::Error> {
        Ok(Conn {
            client: self.config.connect(NoTls)?,
            prepared: HashMap::new(),
            table: Arc::clone(&self.table),
        })
    }

    fn take(&self) -> std::result::Result<Conn, postgres::Error> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(mut conn) if !conn.client.is_closed() => {
                if conn.table != self.table {
                    conn.prepared.clear();
                    conn.table = Arc::clone(&self.table);
                }
                Ok(conn)
            }
            _ => self.connect(),
        }
    }

    fn put_back(&self, conn: Conn) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
    }

    /// Runs `f` on a connection once (for work that cannot be run again
    /// from the start: a lost connection is an error, and whatever `f` did
    /// in its transaction is rolled back by the server).
    pub(crate) fn once<R>(
        &self,
        what: &str,
        f: impl FnOnce(&mut Conn) -> std::result::Result<R, postgres::Error>,
    ) -> Result<R> {
        let mut conn = self.take().map_err(|e| self.error(what, e))?;
        let out = f(&mut conn).map_err(|e| self.error(what, e))?;
        self.put_back(conn);
        Ok(out)
    }

    /// Runs `f` on a connection. If the connection is lost (or the server
    /// restarts), reconnects and runs `f` again, with `retried` true once a
    /// run may have been committed (its answer lost), until
    /// [`reconnect_within`](Pool::reconnect_within) has passed; a deadlock
    /// or serialization failure runs it again at once. `what` names the
    /// call in an error.
    pub(crate) fn run<R>(
        &self,
        what: &str,
        mut f: impl FnMut(&mut Conn, bool) -> std::result::Result<R, postgres::Error>,
    ) -> Result<R> {
        let started = Instant::now();
        let mut retried = false;
        let mut pause = Duration::from_millis(20);
        loop {
            let mut sent = false;
            let outcome = self.take().and_then(|mut conn| {
                sent = true;
                let out = f(&mut conn, retried);
                if out
                    .as_ref()
                    .map_or_else(|e| !matches!(failure(e), Failure::Connection), |_| true)
                {
                    self.put_back(conn);
                }
                out
            });
            let error = match outcome {
                Ok(out) => return Ok(out),
                Err(error) => error,
            };
            match failure(&error) {
                Failure::Final => return Err(self.error(what, error)),
                Failure::Conflict if started.elapsed() < self.reconnect_within => {}
                Failure::Conflict => return Err(self.error(what, error)),
                Failure::Connection => {
                    if started.elapsed() >= self.reconnect_within {
                        return Err(self.error(what, error));
                    }
                    // The statement may have been committed, its answer lost.
                    retried |= sent;
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
}
