//! What every SQLite-backed component does to its database file: the state
//! store, the pub/sub queue and the name resolver each open one, and they
//! must agree on how (a folder made on first use, WAL so readers in other
//! processes never wait for the writer).

use std::path::Path;

use rusqlite::Connection;

/// Opens (creating) the database at `path`, making its folder first, with
/// `busy_timeout` as the wait for another process's write lock.
pub(crate) fn open(path: &Path, busy_timeout: std::time::Duration) -> Result<Connection, String> {
    create_folder(path)?;
    let connection =
        Connection::open(path).map_err(|e| format!("cannot open the database: {e}"))?;
    connection
        .busy_timeout(busy_timeout)
        .map_err(|e| e.to_string())?;
    Ok(connection)
}

/// Makes the folder the database file `path` goes in.
pub(crate) fn create_folder(path: &Path) -> Result<(), String> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    Ok(())
}

/// Switches `connection` to WAL (warning, as `owner`, where the file system
/// cannot have it). WAL lets readers in other processes proceed while one
/// writes.
pub(crate) fn enable_wal(connection: &Connection, owner: &str) -> Result<(), String> {
    let mode: String = connection
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(|e| format!("cannot enable WAL: {e}"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(%mode, "{owner}: WAL mode is not available");
    }
    Ok(())
}

/// `synchronous = NORMAL`: in WAL mode a committed transaction survives a
/// crash of the process (`kill -9`), without an fsync per commit.
pub(crate) fn durable_without_fsync(connection: &Connection) -> Result<(), String> {
    connection
        .pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| e.to_string())
}
