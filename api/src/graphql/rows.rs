//! The fleet's child rows decoded by position, straight from the driver's row.
//!
//! sea-orm's derived `FromQueryResult` looks every column up by name (a SipHash per cell),
//! checks its type, and for each NULL formats an error message that it then throws away:
//! about 14,000 instructions per server row, two thirds of a fleet page's database cost
//! (measured with callgrind, see `bench/README.md`). The loaders read the same statements
//! through [`Decode`] instead: the columns by position, in the order of `Column::iter()`
//! (what `Entity::find()` selects), with the decoders sea-orm itself would call.
//!
//! Invariant: a model's reader names every field through its `Column` variant, so a column
//! added to an entity is a compile error here until it is read.
//!
//! A statement may also read only some of the columns ([`Columns`], [`some`]): a rendered
//! list that writes a server's hostname and status need not fetch, send and decode its
//! sixteen columns. The model's other fields then hold blanks (empty, zero, the enum's first
//! value), so such a model must only reach code that reads the columns it was loaded with:
//! the loaders keep it under keys of its own ([`super::loaders::Narrow`]).

use entity::{
    cluster_metadata, node_pool_annotations, node_pool_labels, node_pool_taints, node_pools,
    servers,
};
use sea_orm::{
    ActiveEnum, ConnectionTrait, DbErr, EntityTrait, Iterable, QueryResult, QuerySelect,
    QueryTrait, Select,
    sqlx::{self, Postgres, Row as _, Sqlite},
};

/// Some columns of a table, by position (`Column::X as usize`, the order of
/// `Column::iter()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Columns(u64);

impl Columns {
    /// Every column.
    pub const ALL: Columns = Columns(u64::MAX);
    /// No column.
    pub const NONE: Columns = Columns(0);

    /// The column at `position`.
    pub const fn of(position: usize) -> Columns {
        Columns(1 << position)
    }

    /// The columns at `positions`.
    pub fn at(positions: &[usize]) -> Columns {
        Columns(positions.iter().fold(0, |bits, &p| {
            debug_assert!(p < 64, "a table of at most 64 columns");
            bits | 1 << p
        }))
    }

    /// Both sets.
    pub fn and(self, other: Columns) -> Columns {
        Columns(self.0 | other.0)
    }

    /// Whether the column at `position` is in the set.
    pub fn has(self, position: usize) -> bool {
        self.0 & (1 << position) != 0
    }

    /// The index of the column at `position` in a row of this set's columns.
    fn index(self, position: usize) -> usize {
        (self.0 & ((1u64 << position) - 1)).count_ones() as usize
    }
}

/// Whether `columns` holds every column of `E` (a statement for them reads whole rows).
pub fn reads_all<E: EntityTrait>(columns: Columns) -> bool {
    let count = E::Column::iter().count();
    let all = if count >= 64 {
        u64::MAX
    } else {
        (1u64 << count) - 1
    };
    columns.0 & all == all
}

/// A model read from a row by position.
pub trait Decode: Sized {
    /// Reads one row of `Entity::find()` narrowed to `columns` ([`some`]); fields of
    /// other columns hold blanks.
    fn decode(row: &QueryResult, columns: Columns) -> Result<Self, DbErr>;
}

/// Runs `select` (`Entity::find()` with conditions) reading only `columns`, and decodes
/// every row; the models' other fields hold blanks (see the module's docs).
pub async fn some<E, C>(db: &C, select: Select<E>, columns: Columns) -> Result<Vec<E::Model>, DbErr>
where
    E: EntityTrait,
    E::Model: Decode,
    C: ConnectionTrait,
{
    let select = if reads_all::<E>(columns) {
        select
    } else {
        let read = E::Column::iter()
            .enumerate()
            .filter(|(i, _)| columns.has(*i));
        select.select_only().columns(read.map(|(_, c)| c))
    };
    let rows = db
        .query_all_raw(select.build(db.get_database_backend()))
        .await?;
    // Sized up front: collecting through `Result` cannot, and growing moved every model
    // decoded so far again (2 % of the fleet read in memmove, `bench/README.md`).
    let mut models = Vec::with_capacity(rows.len());
    for row in &rows {
        models.push(E::Model::decode(row, columns)?);
    }
    Ok(models)
}

/// How a field is read from its cell, and what it holds when its column was not read.
trait Read<T> {
    fn read(row: &QueryResult, column: usize) -> Result<T, DbErr>;
    fn blank() -> T;
}

/// A field read as the driver decodes it ([`cell`]).
struct Plain;
/// A column enum stored as its string value.
struct Enum;

impl<T> Read<T> for Plain
where
    T: Default,
    T: sqlx::Type<Postgres> + for<'r> sqlx::Decode<'r, Postgres>,
    T: sqlx::Type<Sqlite> + for<'r> sqlx::Decode<'r, Sqlite>,
{
    fn read(row: &QueryResult, column: usize) -> Result<T, DbErr> {
        cell(row, column)
    }
    fn blank() -> T {
        T::default()
    }
}

impl<T: ActiveEnum<Value = String> + Iterable> Read<T> for Enum {
    fn read(row: &QueryResult, column: usize) -> Result<T, DbErr> {
        T::try_from_value(&cell::<String>(row, column)?)
    }
    fn blank() -> T {
        T::iter().next().expect("an enum has a value")
    }
}

/// One cell of a row: position `column` decoded as `T`. PostgreSQL skips sqlx's type check
/// (the columns are ours, made by the migrations); SQLite keeps it.
fn cell<T>(row: &QueryResult, column: usize) -> Result<T, DbErr>
where
    T: sqlx::Type<Postgres> + for<'r> sqlx::Decode<'r, Postgres>,
    T: sqlx::Type<Sqlite> + for<'r> sqlx::Decode<'r, Sqlite>,
{
    let read = if let Some(row) = row.try_as_pg_row() {
        row.try_get_unchecked(column)
    } else if let Some(row) = row.try_as_sqlite_row() {
        row.try_get(column)
    } else {
        return Err(DbErr::Custom("rows: unsupported database backend".into()));
    };
    read.map_err(|e| DbErr::Type(format!("column {column}: {e}")))
}

/// Implements [`Decode`] for a model: each field with the reader that decodes it.
macro_rules! decode {
    ($module:ident { $($field:ident: $column:ident by $read:ident),+ $(,)? }) => {
        impl Decode for $module::Model {
            fn decode(row: &QueryResult, columns: Columns) -> Result<Self, DbErr> {
                Ok($module::Model {
                    $($field: {
                        let position = $module::Column::$column as usize;
                        if columns.has(position) {
                            <$read as Read<_>>::read(row, columns.index(position))?
                        } else {
                            <$read as Read<_>>::blank()
                        }
                    },)+
                })
            }
        }
    };
}

decode!(node_pools {
    id: Id by Plain,
    organization_id: OrganizationId by Plain,
    cluster_id: ClusterId by Plain,
    name: Name by Plain,
    role: Role by Enum,
    desired_size: DesiredSize by Plain,
    created_at: CreatedAt by Plain,
    updated_at: UpdatedAt by Plain,
});

decode!(servers {
    id: Id by Plain,
    organization_id: OrganizationId by Plain,
    cluster_id: ClusterId by Plain,
    node_pool_id: NodePoolId by Plain,
    hostname: Hostname by Plain,
    public_ip: PublicIp by Plain,
    private_ip: PrivateIp by Plain,
    role: Role by Enum,
    status: Status by Enum,
    ssh_user: SshUser by Plain,
    ssh_port: SshPort by Plain,
    ssh_key_id: SshKeyId by Plain,
    host_key: HostKey by Plain,
    status_message: StatusMessage by Plain,
    created_at: CreatedAt by Plain,
    updated_at: UpdatedAt by Plain,
});

decode!(node_pool_labels {
    id: Id by Plain,
    organization_id: OrganizationId by Plain,
    node_pool_id: NodePoolId by Plain,
    key: Key by Plain,
    value: Value by Plain,
    created_at: CreatedAt by Plain,
    updated_at: UpdatedAt by Plain,
});

decode!(node_pool_annotations {
    id: Id by Plain,
    organization_id: OrganizationId by Plain,
    node_pool_id: NodePoolId by Plain,
    key: Key by Plain,
    value: Value by Plain,
    created_at: CreatedAt by Plain,
    updated_at: UpdatedAt by Plain,
});

decode!(node_pool_taints {
    id: Id by Plain,
    organization_id: OrganizationId by Plain,
    node_pool_id: NodePoolId by Plain,
    key: Key by Plain,
    value: Value by Plain,
    effect: Effect by Enum,
    created_at: CreatedAt by Plain,
    updated_at: UpdatedAt by Plain,
});

decode!(cluster_metadata {
    id: Id by Plain,
    organization_id: OrganizationId by Plain,
    cluster_id: ClusterId by Plain,
    key: Key by Plain,
    value: Value by Plain,
    created_at: CreatedAt by Plain,
    updated_at: UpdatedAt by Plain,
});
