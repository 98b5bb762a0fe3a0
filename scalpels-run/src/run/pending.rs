//! Rows that wait to be written as one batch.
//!
//! The loader polls the ring buffers 20 times a second; writing what each poll brought cost
//! more in fixed per-batch work (a schema, Arrow builders and arrays, one Parquet column
//! writer call per column) than in the rows themselves on a busy service. So streamed rows
//! gather here until [`ROWS_PER_BATCH`] of them are pending or a write is due (once a
//! [`write_every`]), and are written as one batch.

use std::time::Duration;

/// Rows written at once when they come faster than the writes are due.
pub const ROWS_PER_BATCH: usize = 8192;

/// How often gathered rows are written: at least once a second, and at least once per
/// flush interval, so every closed segment has the rows of its time.
pub fn write_every(flush_interval: Duration) -> Duration {
    flush_interval.min(Duration::from_secs(1))
}

pub struct Pending<R> {
    rows: Vec<R>,
}

impl<R> Default for Pending<R> {
    fn default() -> Self {
        Self { rows: Vec::new() }
    }
}

impl<R> Pending<R> {
    pub fn push(&mut self, row: R) {
        self.rows.push(row);
    }

    pub fn extend(&mut self, rows: impl IntoIterator<Item = R>) {
        self.rows.extend(rows);
    }

    /// For producers that append to a `Vec`.
    pub fn rows_mut(&mut self) -> &mut Vec<R> {
        &mut self.rows
    }

    /// The rows to write now, if any: all of them when `due`, otherwise only once a whole
    /// batch has gathered.
    pub fn take(&mut self, due: bool) -> Option<Vec<R>> {
        let ready = !self.rows.is_empty() && (due || self.rows.len() >= ROWS_PER_BATCH);
        ready.then(|| std::mem::take(&mut self.rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_wait_for_a_whole_batch_or_a_due_write() {
        let mut pending = Pending::default();
        assert_eq!(pending.take(true), None);
        pending.extend(0..ROWS_PER_BATCH - 1);
        assert_eq!(pending.take(false), None);
        pending.push(ROWS_PER_BATCH - 1);
        assert_eq!(
            pending.take(false).map(|rows| rows.len()),
            Some(ROWS_PER_BATCH)
        );
        pending.push(7);
        assert_eq!(pending.take(true), Some(vec![7]));
        assert_eq!(pending.take(true), None);
    }

    #[test]
    fn writes_are_due_at_least_once_a_second_and_per_flush() {
        assert_eq!(write_every(Duration::from_secs(5)), Duration::from_secs(1));
        assert_eq!(
            write_every(Duration::from_millis(200)),
            Duration::from_millis(200)
        );
    }
}
