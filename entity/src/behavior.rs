//! The lifecycle hooks every entity shares: UUIDv7 ids and timestamps are set in Rust, not by the
//! database.

/// The current time, truncated to microseconds: PostgreSQL's `timestamptz` keeps no more, so a
/// model built in Rust equals the row read back on either backend.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}

/// Implements `ActiveModelBehavior` for the `ActiveModel` of the module it is invoked in.
///
/// - `uuid_v7_timestamps!()` for tables with `id`, `created_at` and `updated_at`.
/// - `uuid_v7_timestamps!(append_only)` for tables with `id` and `created_at` only.
///
/// `ActiveModel::new()` fills `id` with a fresh UUIDv7 (time-ordered, so indexes stay compact) and
/// the timestamps with [`now`]. `before_save` fills whichever of those is still unset on insert
/// (for models built with `Default` instead of `new()`) and bumps `updated_at` on every update.
macro_rules! uuid_v7_timestamps {
    () => {
        $crate::behavior::uuid_v7_timestamps!(@impl updated_at);
    };
    (append_only) => {
        $crate::behavior::uuid_v7_timestamps!(@impl);
    };
    (@impl $($updated_at:ident)?) => {
        #[::sea_orm::entity::prelude::async_trait::async_trait]
        impl ::sea_orm::ActiveModelBehavior for ActiveModel {
            fn new() -> Self {
                let now = $crate::behavior::now();
                Self {
                    id: ::sea_orm::ActiveValue::Set(::uuid::Uuid::now_v7()),
                    created_at: ::sea_orm::ActiveValue::Set(now),
                    $($updated_at: ::sea_orm::ActiveValue::Set(now),)?
                    ..<Self as ::sea_orm::ActiveModelTrait>::default()
                }
            }

            async fn before_save<C>(
                mut self,
                _db: &C,
                insert: bool,
            ) -> Result<Self, ::sea_orm::DbErr>
            where
                C: ::sea_orm::ConnectionTrait,
            {
                let now = $crate::behavior::now();
                if insert {
                    if self.id.is_not_set() {
                        self.id = ::sea_orm::ActiveValue::Set(::uuid::Uuid::now_v7());
                    }
                    if self.created_at.is_not_set() {
                        self.created_at = ::sea_orm::ActiveValue::Set(now);
                    }
                    $(
                        if self.$updated_at.is_not_set() {
                            self.$updated_at = ::sea_orm::ActiveValue::Set(now);
                        }
                    )?
                }
                $(else {
                    self.$updated_at = ::sea_orm::ActiveValue::Set(now);
                })?
                Ok(self)
            }
        }
    };
}

pub(crate) use uuid_v7_timestamps;
