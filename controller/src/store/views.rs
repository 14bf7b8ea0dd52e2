//! View rows: each view's XML by name, read and written as text (parsing is the caller's,
//! after the store call). The built-in view `all` has a row only once it was configured.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Every view's name and XML, by name.
pub fn rows(conn: &Connection) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt = conn.prepare("SELECT name, config_xml FROM views ORDER BY name")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The XML of view `name`, if stored.
pub fn get_xml(conn: &Connection, name: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT config_xml FROM views WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()?)
}

/// Stores a new view; `false` when the name is taken.
pub fn insert(conn: &Connection, name: &str, xml: &str) -> Result<bool, StoreError> {
    let now = now_ms();
    Ok(conn.execute(
        "INSERT INTO views (name, config_xml, created_ms, updated_ms) VALUES (?1, ?2, ?3, ?3)
         ON CONFLICT(name) DO NOTHING",
        params![name, xml, now],
    )? == 1)
}

/// Stores view `name`'s XML, creating the row if there is none (the built-in view).
pub fn put(conn: &Connection, name: &str, xml: &str) -> Result<(), StoreError> {
    let now = now_ms();
    conn.execute(
        "INSERT INTO views (name, config_xml, created_ms, updated_ms) VALUES (?1, ?2, ?3, ?3)
         ON CONFLICT(name) DO UPDATE SET config_xml = ?2, updated_ms = ?3",
        params![name, xml, now],
    )?;
    Ok(())
}

/// Replaces view `name`'s XML; `false` when there is no such row.
pub fn update(conn: &Connection, name: &str, xml: &str) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "UPDATE views SET config_xml = ?2, updated_ms = ?3 WHERE name = ?1",
        params![name, xml, now_ms()],
    )? == 1)
}

/// Deletes view `name`; `false` when there was none.
pub fn delete(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM views WHERE name = ?1", [name])? == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn views_are_created_once_changed_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::Store::open(&dir.path().join("t.db")).unwrap();
        store
            .call(|c| {
                assert!(insert(c, "web", "<a/>")?);
                assert!(!insert(c, "web", "<b/>")?);
                assert_eq!(get_xml(c, "web")?.as_deref(), Some("<a/>"));
                assert!(update(c, "web", "<c/>")?);
                assert!(!update(c, "nope", "<c/>")?);
                put(c, "all", "<d/>")?;
                put(c, "all", "<e/>")?;
                assert_eq!(
                    rows(c)?,
                    [
                        ("all".to_owned(), "<e/>".to_owned()),
                        ("web".to_owned(), "<c/>".to_owned())
                    ]
                );
                assert!(delete(c, "web")?);
                assert!(!delete(c, "web")?);
                Ok(())
            })
            .await
            .unwrap();
    }
}
