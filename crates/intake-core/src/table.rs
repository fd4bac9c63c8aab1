//! Scan tables: the latest `retain_size` rows of a stream, in memory, kept
//! up to date by every durable push and rebuilt from the log at start.
//!
//! With a `key_field`, a row per key: a newer record of a key replaces its
//! row, and past `retain_size` keys the least recently written one goes.
//! Without one, the last `retain_size` records. "Latest" orders rows by
//! record timestamp, then partition and offset: the same order whether the
//! rows come from pushes or from the log, so a restart keeps exactly the
//! rows it had (as far as retention kept their records).

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use intake_format::filter::Filter;
use parking_lot::Mutex;
use serde_json::Value;

/// Where a row sits in the table's order.
type Position = (i64, u32, u64);

/// One row.
#[derive(Debug, Clone)]
struct Row {
    key: Option<Bytes>,
    value: Value,
}

/// The rows of one table.
#[derive(Debug)]
pub struct Table {
    retain: usize,
    keyed: bool,
    rows: Mutex<Rows>,
}

#[derive(Debug, Default)]
struct Rows {
    by_position: BTreeMap<Position, Row>,
    by_key: HashMap<Bytes, Position>,
}

impl Table {
    /// An empty table of at most `retain` rows, by key when `keyed`.
    pub fn new(retain: usize, keyed: bool) -> Self {
        Self {
            retain: retain.max(1),
            keyed,
            rows: Mutex::new(Rows::default()),
        }
    }

    /// Takes one durable record (a JSON value; other values are skipped).
    pub fn apply(
        &self,
        partition: u32,
        offset: u64,
        timestamp: i64,
        key: Option<&Bytes>,
        value: &[u8],
    ) {
        let Ok(value) = serde_json::from_slice::<Value>(value) else {
            return;
        };
        let position = (timestamp, partition, offset);
        let mut rows = self.rows.lock();
        let Rows {
            by_position,
            by_key,
        } = &mut *rows;
        let key = if self.keyed { key.cloned() } else { None };
        if let Some(key) = &key {
            if let Some(old) = by_key.get(key).copied() {
                // Pushes to one partition may be applied out of order: a
                // row only ever moves to a later record of its key.
                if old.1 == partition && old.2 >= offset {
                    return;
                }
                by_position.remove(&old);
            }
            by_key.insert(key.clone(), position);
        }
        by_position.insert(position, Row { key, value });
        while by_position.len() > self.retain {
            let Some((_, evicted)) = by_position.pop_first() else {
                break;
            };
            if let Some(key) = evicted.key {
                by_key.remove(&key);
            }
        }
    }

    /// The newest `limit` rows that pass `filter`, oldest first.
    pub fn rows(&self, filter: Option<&Filter>, limit: usize) -> Vec<Value> {
        let rows = self.rows.lock();
        let mut out: Vec<Value> = rows
            .by_position
            .values()
            .rev()
            .filter(|row| filter.is_none_or(|f| f.matches(&row.value)))
            .take(limit)
            .map(|row| row.value.clone())
            .collect();
        out.reverse();
        out
    }

    /// Rows held now.
    pub fn len(&self) -> usize {
        self.rows.lock().by_position.len()
    }

    /// True when no row is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn apply(table: &Table, p: u32, o: u64, key: Option<&str>, value: Value) {
        let key = key.map(|k| Bytes::copy_from_slice(k.as_bytes()));
        table.apply(
            p,
            o,
            1000 + o as i64,
            key.as_ref(),
            value.to_string().as_bytes(),
        );
    }

    #[test]
    fn without_a_key_the_last_records_stay() {
        let table = Table::new(3, false);
        for o in 0..5 {
            apply(&table, 0, o, None, json!({ "n": o }));
        }
        assert_eq!(
            table.rows(None, 10),
            [json!({"n": 2}), json!({"n": 3}), json!({"n": 4})]
        );
        assert_eq!(table.rows(None, 2), [json!({"n": 3}), json!({"n": 4})]);
        let odd = Filter::parse("n = 3").unwrap();
        assert_eq!(table.rows(Some(&odd), 10), [json!({"n": 3})]);
    }

    #[test]
    fn with_a_key_a_row_per_key_and_the_stalest_key_goes() {
        let table = Table::new(2, true);
        apply(&table, 0, 0, Some("a"), json!({"id": "a", "v": 1}));
        apply(&table, 0, 1, Some("b"), json!({"id": "b", "v": 1}));
        apply(&table, 0, 2, Some("a"), json!({"id": "a", "v": 2}));
        assert_eq!(
            table.rows(None, 10),
            [json!({"id": "b", "v": 1}), json!({"id": "a", "v": 2})]
        );
        // An older record of "a" applied late changes nothing.
        apply(&table, 0, 0, Some("a"), json!({"id": "a", "v": 1}));
        assert_eq!(table.len(), 2);
        apply(&table, 0, 3, Some("c"), json!({"id": "c", "v": 1}));
        assert_eq!(
            table.rows(None, 10),
            [json!({"id": "a", "v": 2}), json!({"id": "c", "v": 1})]
        );
        // Not JSON: skipped.
        table.apply(0, 4, 2000, None, b"not json");
        assert_eq!(table.len(), 2);
    }
}
