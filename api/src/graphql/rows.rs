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

use entity::{
    cluster_metadata, node_pool_annotations, node_pool_labels, node_pool_taints, node_pools,
    servers,
};
use sea_orm::{
    ActiveEnum, ConnectionTrait, DbErr, EntityTrait, QueryResult, QueryTrait, Select,
    sqlx::{self, Postgres, Row as _, Sqlite},
};

/// A model read from a row by position.
pub trait Decode: Sized {
    /// Reads one row of `Entity::find()`.
    fn decode(row: &QueryResult) -> Result<Self, DbErr>;
}

/// Runs `select` (all columns of `E`, in declaration order) and decodes every row.
pub async fn all<E, C>(db: &C, select: Select<E>) -> Result<Vec<E::Model>, DbErr>
where
    E: EntityTrait,
    E::Model: Decode,
    C: ConnectionTrait,
{
    let rows = db
        .query_all_raw(select.build(db.get_database_backend()))
        .await?;
    rows.iter().map(E::Model::decode).collect()
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

/// A column enum stored as its string value.
fn enum_cell<T: ActiveEnum<Value = String>>(row: &QueryResult, column: usize) -> Result<T, DbErr> {
    T::try_from_value(&cell::<String>(row, column)?)
}

/// Implements [`Decode`] for a model: each field with the reader that decodes it.
macro_rules! decode {
    ($module:ident { $($field:ident: $column:ident by $read:ident),+ $(,)? }) => {
        impl Decode for $module::Model {
            fn decode(row: &QueryResult) -> Result<Self, DbErr> {
                Ok($module::Model {
                    $($field: $read(row, $module::Column::$column as usize)?,)+
                })
            }
        }
    };
}

decode!(node_pools {
    id: Id by cell,
    organization_id: OrganizationId by cell,
    cluster_id: ClusterId by cell,
    name: Name by cell,
    role: Role by enum_cell,
    desired_size: DesiredSize by cell,
    created_at: CreatedAt by cell,
    updated_at: UpdatedAt by cell,
});

decode!(servers {
    id: Id by cell,
    organization_id: OrganizationId by cell,
    cluster_id: ClusterId by cell,
    node_pool_id: NodePoolId by cell,
    hostname: Hostname by cell,
    public_ip: PublicIp by cell,
    private_ip: PrivateIp by cell,
    role: Role by enum_cell,
    status: Status by enum_cell,
    ssh_user: SshUser by cell,
    ssh_port: SshPort by cell,
    ssh_key_id: SshKeyId by cell,
    host_key: HostKey by cell,
    status_message: StatusMessage by cell,
    created_at: CreatedAt by cell,
    updated_at: UpdatedAt by cell,
});

decode!(node_pool_labels {
    id: Id by cell,
    organization_id: OrganizationId by cell,
    node_pool_id: NodePoolId by cell,
    key: Key by cell,
    value: Value by cell,
    created_at: CreatedAt by cell,
    updated_at: UpdatedAt by cell,
});

decode!(node_pool_annotations {
    id: Id by cell,
    organization_id: OrganizationId by cell,
    node_pool_id: NodePoolId by cell,
    key: Key by cell,
    value: Value by cell,
    created_at: CreatedAt by cell,
    updated_at: UpdatedAt by cell,
});

decode!(node_pool_taints {
    id: Id by cell,
    organization_id: OrganizationId by cell,
    node_pool_id: NodePoolId by cell,
    key: Key by cell,
    value: Value by cell,
    effect: Effect by enum_cell,
    created_at: CreatedAt by cell,
    updated_at: UpdatedAt by cell,
});

decode!(cluster_metadata {
    id: Id by cell,
    organization_id: OrganizationId by cell,
    cluster_id: ClusterId by cell,
    key: Key by cell,
    value: Value by cell,
    created_at: CreatedAt by cell,
    updated_at: UpdatedAt by cell,
});
