//! A query's rows into a [`Table`]: each column is read from the result column named by its key,
//! as its kind wants it.

use anyhow::Result;
use arrow::array::RecordBatch;

use super::{
    dataset::Dataset,
    table::{Cell, Kind, Mark, Table},
    values,
};

pub fn fill(table: &mut Table, batches: &[RecordBatch]) -> Result<()> {
    let mut columns: Vec<Vec<Cell>> = Vec::new();
    for column in &table.columns {
        let cells: Vec<Cell> = match column.kind {
            Kind::Text | Kind::Path => values::strings(batches, &column.key)?
                .into_iter()
                .map(Cell::from)
                .collect(),
            Kind::Count | Kind::Duration | Kind::Bytes => values::ints(batches, &column.key)?
                .into_iter()
                .map(Cell::from)
                .collect(),
            Kind::Number | Kind::Percent | Kind::Rate | Kind::Change => {
                values::floats(batches, &column.key)?
                    .into_iter()
                    .map(Cell::from)
                    .collect()
            }
        };
        columns.push(cells);
    }
    let rows = columns.first().map_or(0, Vec::len);
    for row in 0..rows {
        table.push(
            columns.iter().map(|c| c[row].clone()).collect(),
            Mark::Plain,
        );
    }
    Ok(())
}

/// Runs `sql` and fills `table` with its rows.
pub async fn run(dataset: &Dataset, mut table: Table, sql: &str) -> Result<Table> {
    let batches = dataset.query(sql).await?;
    fill(&mut table, &batches)?;
    Ok(table)
}
