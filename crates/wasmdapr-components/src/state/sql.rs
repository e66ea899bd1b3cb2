//! The SQL shape the SQL state stores share ([`sqlite`](super::sqlite),
//! [`postgres`](super::postgres)): one table of `key`, `value`, `etag` and
//! an expiry; a row is live while it has no expiry or its expiry is later
//! than the database's "now"; a conditional write is one statement whose
//! `WHERE` carries the condition, so the number of rows it changed says
//! whether the condition held; ETags are random UUIDs.
//!
//! The statements are written here once, for a [`Dialect`] that supplies
//! only what differs between the databases: how a parameter is written, the
//! database clock, how an expiry is computed from a TTL, and how a key
//! matches a prefix. Both stores bind the same parameters in the same
//! order:
//!
//! | statement | parameters |
//! |---|---|
//! | `get` | key |
//! | `upsert`, `insert_if_absent` | key, value, new etag, TTL seconds (NULL: none) |
//! | `update_if_etag` | key, value, new etag, TTL seconds, the ETag read |
//! | `delete` | key |
//! | `delete_if_etag` | key, the ETag read |
//! | `scan_first` | prefix pattern, limit |
//! | `scan_next` | prefix pattern, limit, the last key of the batch before |
//! | `cleanup` | none |

use wasmdapr_runtime::state::{StateError, WriteCondition};

/// What differs between the SQL databases of the state stores.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dialect {
    /// Parameter `n` (1-based): `?n` or `$n`.
    pub param: fn(usize) -> String,
    /// The database clock, in the expiry column's unit.
    pub now: &'static str,
    /// The expiry column.
    pub expiry: &'static str,
    /// The expiry of a row written now with the TTL in seconds given by the
    /// parameter (NULL stays NULL: no expiry).
    pub expires_after: fn(&str) -> String,
    /// Columns (with their values) every write sets besides key, value,
    /// etag and expiry.
    pub written: &'static [(&'static str, &'static str)],
    /// Columns (with their values) a write sets only when it replaces an
    /// existing row, e.g. the time of the last update.
    pub updated: &'static [(&'static str, &'static str)],
    /// The condition that `key` starts with the prefix pattern given by the
    /// parameter.
    pub key_has_prefix: fn(&str) -> String,
}

/// The statements of one table, built once (a table name cannot be a
/// parameter).
#[derive(Debug)]
pub(crate) struct Statements {
    pub get: String,
    pub upsert: String,
    pub insert_if_absent: String,
    pub update_if_etag: String,
    pub delete: String,
    pub delete_if_etag: String,
    pub scan_first: String,
    pub scan_next: String,
    pub cleanup: String,
    /// `SELECT key, value, etag, expiry … WHERE <live> AND`: a batched
    /// read, to which each store adds its own `key IN …` condition.
    pub live_rows_where: String,
}

impl Statements {
    pub fn new(dialect: &Dialect, table: &str) -> Self {
        let p = dialect.param;
        let (now, exp) = (dialect.now, dialect.expiry);
        let live = format!("({exp} IS NULL OR {exp} > {now})");
        let expires = (dialect.expires_after)(&p(4));
        let extra_columns: String = dialect
            .written
            .iter()
            .map(|(column, _)| format!(", {column}"))
            .collect();
        let extra_values: String = dialect
            .written
            .iter()
            .map(|(_, value)| format!(", {value}"))
            .collect();
        let extra_sets: String = dialect
            .written
            .iter()
            .chain(dialect.updated)
            .map(|(column, value)| format!(", {column} = {value}"))
            .collect();
        let insert = format!(
            "INSERT INTO {table} AS s (key, value, etag, {exp}{extra_columns}) \
             VALUES ({}, {}, {}, {expires}{extra_values}) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, etag = excluded.etag, \
             {exp} = excluded.{exp}{extra_sets}",
            p(1),
            p(2),
            p(3),
        );
        let columns = format!("key, value, etag, {exp}");
        let scan = |after: &str| {
            format!(
                "SELECT {columns} FROM {table} WHERE {} AND {live}{after} ORDER BY key LIMIT {}",
                (dialect.key_has_prefix)(&p(1)),
                p(2)
            )
        };
        Statements {
            get: format!(
                "SELECT value, etag, {exp} FROM {table} WHERE key = {} AND {live}",
                p(1)
            ),
            // In `DO UPDATE … WHERE`, `s` is the existing row: only an
            // expired row may be replaced by an insert-only write.
            insert_if_absent: format!("{insert} WHERE s.{exp} IS NOT NULL AND s.{exp} <= {now}"),
            upsert: insert,
            update_if_etag: format!(
                "UPDATE {table} SET value = {}, etag = {}, {exp} = {expires}{extra_sets} \
                 WHERE key = {} AND etag = {} AND {live}",
                p(2),
                p(3),
                p(1),
                p(5)
            ),
            delete: format!("DELETE FROM {table} WHERE key = {}", p(1)),
            delete_if_etag: format!(
                "DELETE FROM {table} WHERE key = {} AND etag = {} AND {live}",
                p(1),
                p(2)
            ),
            // A batch of a scan, keyset-paginated on the primary key: the
            // first from the start, the next ones after the last key of the
            // batch before.
            scan_first: scan(""),
            scan_next: scan(&format!(" AND key > {}", p(3))),
            cleanup: format!("DELETE FROM {table} WHERE {exp} IS NOT NULL AND {exp} <= {now}"),
            live_rows_where: format!("SELECT {columns} FROM {table} WHERE {live} AND "),
        }
    }

    /// The statement of a write under `condition`, and the ETag it binds
    /// last (for `update_if_etag`).
    pub fn for_write(&self, condition: WriteCondition) -> (&str, Option<String>) {
        match condition {
            WriteCondition::Always => (&self.upsert, None),
            WriteCondition::MustNotExist => (&self.insert_if_absent, None),
            WriteCondition::EtagMatches(etag) => (&self.update_if_etag, Some(etag)),
        }
    }
}

/// Refuses an ETag that cannot be one of ours (a UUID), before the database
/// is asked.
pub(crate) fn check_etag(condition: &WriteCondition) -> Result<(), StateError> {
    match condition {
        WriteCondition::EtagMatches(etag) => uuid::Uuid::parse_str(etag)
            .map(|_| ())
            .map_err(|_| StateError::EtagInvalid(etag.clone())),
        WriteCondition::Always | WriteCondition::MustNotExist => Ok(()),
    }
}

/// A new ETag.
pub(crate) fn new_etag() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The outcome of a conditional statement: no row changed means its
/// condition did not hold.
pub(crate) fn changed(rows: u64) -> Result<(), StateError> {
    if rows == 0 {
        Err(StateError::EtagMismatch)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ETags are UUIDs: anything else is invalid rather than a mismatch.
    #[test]
    fn etags_are_uuids() {
        let etag = |e: &str| check_etag(&WriteCondition::EtagMatches(e.into()));
        assert!(etag("67e55044-10b1-426f-9247-bb680e5fe0c8").is_ok());
        assert_eq!(etag("7"), Err(StateError::EtagInvalid("7".into())));
        assert!(check_etag(&WriteCondition::MustNotExist).is_ok());
        assert_eq!(changed(0), Err(StateError::EtagMismatch));
        assert_eq!(changed(1), Ok(()));
    }

    /// Both stores' dialects get every statement from the one shape,
    /// differing only in what the dialect supplies.
    #[test]
    fn one_shape_two_dialects() {
        let s = Statements::new(&super::super::postgres::DIALECT, "state");
        assert_eq!(
            s.get,
            "SELECT value, etag, expiredate FROM state WHERE key = $1 \
             AND (expiredate IS NULL OR expiredate > now())"
        );
        assert_eq!(
            s.update_if_etag,
            "UPDATE state SET value = $2, etag = $3, \
             expiredate = now() + make_interval(secs => $4), isbinary = true, \
             updatedate = now() WHERE key = $1 AND etag = $5 AND (expiredate IS NULL OR expiredate > now())"
        );
        assert!(s.scan_next.ends_with("AND key > $3 ORDER BY key LIMIT $2"));
        let sqlite = Statements::new(&super::super::sqlite::DIALECT, "kv");
        assert_eq!(
            sqlite.delete_if_etag,
            "DELETE FROM kv WHERE key = ?1 AND etag = ?2 AND (expiration_time IS NULL \
             OR expiration_time > CAST(unixepoch('subsec') * 1000 AS INTEGER))"
        );
        let (sql, etag) = s.for_write(WriteCondition::EtagMatches("e".into()));
        assert_eq!(
            (sql, etag.as_deref()),
            (s.update_if_etag.as_str(), Some("e"))
        );
    }
}
