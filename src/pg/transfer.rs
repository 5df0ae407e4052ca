//! Whole records in and out of a [`PgTracker`], in order: what
//! `tastypod copy` moves between a file tracker and PostgreSQL, and what
//! `tastypod tracker reset` changes.

use super::{Columns, PgTracker, fields_text, sql};
use crate::error::{ErrorKind, Result, fail};
use crate::tracker::{RESERVED, TaskState, millis};
use serde_json::Value;

/// The columns of a page of whole records, as [`sql::INSERT_TASKS`] takes them.
#[derive(Default)]
struct PageColumns {
    done: Vec<bool>,
    aborted: Vec<bool>,
    tries: Vec<i64>,
    owners: Vec<Option<String>>,
    leases: Vec<Option<i64>>,
    waits: Vec<Option<i64>>,
    fields: Vec<String>,
}

/// How many tasks one statement moves.
const PAGE: i64 = 2000;

impl PgTracker {
    /// Whether the tracker holds no task.
    ///
    /// # Errors
    ///
    /// The database's error.
    pub fn is_empty(&self) -> Result<bool> {
        let any: bool = self.pool.run("looking for tasks", |conn, _| {
            let any = conn.statement(sql::ANY_TASK)?;
            conn.client().query_one(&any, &[])?.try_get(0)
        })?;
        Ok(!any)
    }

    /// Calls `f` with each task's key and whole record (reserved fields and
    /// the user's, as a file tracker holds it), in the order the tasks were
    /// added, a page of tasks at a time.
    ///
    /// # Errors
    ///
    /// The database's error, or `f`'s.
    pub fn for_each_record(&self, mut f: impl FnMut(&str, Value) -> Result<()>) -> Result<()> {
        self.scan("reading tasks in order", sql::CURSOR, |row| {
            let key: String = row.try_get(1)?;
            let columns = Columns::of(row, 2)?;
            Ok(columns.record(&key).and_then(|record| f(&key, record)))
        })
    }

    /// Runs `cursor` (a `DECLARE tastypod_copy` over the tracker's tasks
    /// after position `$1`, in order, its rows starting with the position)
    /// a page at a time, calling `each` with every row: one ordered scan
    /// (one sort, a page in memory at a time). After a lost connection it
    /// goes on after the last row seen; an error of `each` (`Ok(Err(..))`)
    /// ends it.
    fn scan(
        &self,
        what: &str,
        cursor: &str,
        mut each: impl FnMut(&postgres::Row) -> std::result::Result<Result<()>, postgres::Error>,
    ) -> Result<()> {
        let declare = cursor.replace("{t}", &super::table_of(self.id));
        let mut after = 0i64;
        let mut failed: Option<crate::Error> = None;
        self.pool.run(what, |conn, _| {
            let mut tx = conn.client().transaction()?;
            tx.execute(declare.as_str(), &[&after])?;
            loop {
                let rows = tx.query(format!("FETCH {PAGE} FROM tastypod_copy").as_str(), &[])?;
                if rows.is_empty() {
                    break;
                }
                for row in &rows {
                    let seq: i64 = row.try_get(0)?;
                    if let Err(e) = each(row)? {
                        failed = Some(e);
                        return tx.rollback();
                    }
                    after = seq;
                }
            }
            tx.commit()
        })?;
        failed.map_or(Ok(()), Err)
    }

    /// Appends whole task records (reserved fields and the user's, as a
    /// file tracker holds them), in order, all in one transaction: either
    /// every record is added or none (a key already present, a record that
    /// is not a task record, an error of `records` or a lost connection
    /// adds nothing). Returns how many were added.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotATask`] for a record that is not a task record; the
    /// error `records` gave; the database's error.
    pub fn insert_all(
        &self,
        records: impl IntoIterator<Item = Result<(String, Value)>>,
    ) -> Result<usize> {
        let mut records = records.into_iter();
        let mut failed: Option<crate::Error> = None;
        let max = self.max();
        let added = self.pool.once("adding whole tasks", |conn| {
            let insert = conn.statement(sql::INSERT_TASKS)?;
            let mut tx = conn.client().transaction()?;
            let mut added = 0usize;
            loop {
                let page: Vec<(String, Value)> = match records
                    .by_ref()
                    .take(usize::try_from(PAGE).unwrap_or(1000))
                    .collect::<Result<_>>()
                {
                    Ok(page) => page,
                    Err(e) => {
                        failed = Some(e);
                        return tx.rollback().map(|()| 0);
                    }
                };
                if page.is_empty() {
                    break;
                }
                let columns = match self.columns_of(&page) {
                    Ok(c) => c,
                    Err(e) => {
                        failed = Some(e);
                        return tx.rollback().map(|()| 0);
                    }
                };
                let keys: Vec<&str> = page.iter().map(|(k, _)| k.as_str()).collect();
                tx.execute(
                    &insert,
                    &[
                        &keys,
                        &columns.done,
                        &columns.aborted,
                        &columns.tries,
                        &columns.owners,
                        &columns.leases,
                        &columns.waits,
                        &columns.fields,
                        &max,
                    ],
                )?;
                added += page.len();
            }
            tx.commit()?;
            Ok(added)
        })?;
        failed.map_or(Ok(added), Err)
    }

    /// The columns of a page of whole records.
    fn columns_of(&self, page: &[(String, Value)]) -> Result<PageColumns> {
        let mut c = PageColumns::default();
        for (key, record) in page {
            let state = TaskState::from_record(key, record).map_err(|why| {
                crate::Error::from(ErrorKind::NotATask {
                    path: self.url().into(),
                    key: key.clone(),
                    line: 0,
                    why,
                })
            })?;
            let Value::Object(obj) = record else {
                return fail(ErrorKind::InvalidValue {
                    key: key.clone(),
                    reason: "not a JSON object".into(),
                });
            };
            let mut user = obj.clone();
            user.retain(|k, _| !RESERVED.contains(&k.as_str()));
            let ms = |t| i64::try_from(millis(t)).unwrap_or(i64::MAX);
            c.done.push(state.done);
            c.aborted.push(state.aborted);
            c.tries.push(i64::from(state.tries));
            c.owners.push(state.lease.as_ref().map(|l| l.owner.clone()));
            c.leases.push(state.lease.as_ref().map(|l| ms(l.until)));
            c.waits.push(state.not_before.map(ms));
            c.fields.push(fields_text(&user));
        }
        Ok(c)
    }

    /// Resets tasks so a job tries them again: `keys`, every aborted task
    /// if `aborted`, every task out of tries at `exhausted_at` if given.
    /// Their tries go back to 0 and their abort, claim and retry wait are
    /// cleared (done tasks stay done). Returns how many were reset. Not run
    /// again after a lost connection (it would end claims made meanwhile).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::MissingKey`] if one of `keys` is not a task (nothing
    /// changes); the database's error.
    pub fn reset(&self, keys: &[&str], aborted: bool, exhausted_at: Option<u32>) -> Result<usize> {
        for key in keys {
            if self.columns(key)?.is_none() {
                return fail(ErrorKind::MissingKey {
                    key: (*key).to_string(),
                });
            }
        }
        let limit = i64::from(exhausted_at.unwrap_or(0));
        let reset: i64 = self.pool.once("resetting tasks", |conn| {
            let reset = conn.statement(sql::RESET)?;
            conn.client()
                .query_one(&reset, &[&keys, &aborted, &limit])?
                .try_get(0)
        })?;
        Ok(usize::try_from(reset).unwrap_or(0))
    }

    /// Calls `f` with each key still to do, in order (with the aborted ones
    /// among them if `aborted`), a page at a time: memory holds a page, not
    /// the keys (`tastypod tracker todo`). After a lost connection it goes
    /// on after the last key seen.
    ///
    /// # Errors
    ///
    /// The database's error, or `f`'s.
    pub fn for_each_todo_key(
        &self,
        aborted: bool,
        mut f: impl FnMut(&str) -> Result<()>,
    ) -> Result<()> {
        let cursor = if aborted {
            sql::CURSOR_TODO_OR_ABORTED
        } else {
            sql::CURSOR_TODO
        };
        self.scan("listing the tasks to do", cursor, |row| {
            let key: &str = row.try_get(1)?;
            Ok(f(key))
        })
    }

    /// Up to `limit` keys still to do, in order, with the aborted ones among
    /// them if `aborted` (`tastypod tracker todo --aborted`).
    ///
    /// # Errors
    ///
    /// The database's error.
    pub fn todo_keys_with(&self, limit: usize, aborted: bool) -> Result<Vec<String>> {
        if !aborted {
            return crate::TaskQueue::todo_keys(self, limit);
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.pool.run("listing the tasks to do", |conn, _| {
            let todo = conn.statement(sql::TODO_OR_ABORTED_KEYS)?;
            conn.client()
                .query(&todo, &[&limit])?
                .iter()
                .map(|r| r.try_get(0))
                .collect()
        })
    }
}
