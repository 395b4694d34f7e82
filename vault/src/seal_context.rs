//! Where a sealed value lives: the associated data that pins a ciphertext to its row.

use uuid::Uuid;

/// The place a secret is stored: table, column and row id. Sealing binds the ciphertext to
/// it, so the same bytes copied to another row, column or table no longer open.
///
/// Use the real table and column names (`SealContext::new("credentials", "secret_sealed",
/// id)`): renaming either later requires re-sealing the values, which is the point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealContext<'a> {
    table: &'a str,
    column: &'a str,
    row_id: Uuid,
}

impl<'a> SealContext<'a> {
    /// The context for the value in `table`.`column` of the row `row_id`.
    pub const fn new(table: &'a str, column: &'a str, row_id: Uuid) -> Self {
        SealContext {
            table,
            column,
            row_id,
        }
    }

    /// The fields bound into the associated data, in order.
    pub(crate) fn fields(&self) -> [&[u8]; 3] {
        [
            self.table.as_bytes(),
            self.column.as_bytes(),
            self.row_id.as_bytes(),
        ]
    }
}
