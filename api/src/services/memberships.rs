//! Members of an organization and their roles. An organization always keeps an owner.

use anyhow::Context;
use entity::WriteTxn as _;
use entity::{enums::MemberRole, memberships, users};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, Set,
};
use uuid::Uuid;

use crate::{
    Error, Result,
    error::OnUniqueViolation,
    services::audit::{self, Audit},
    state::AppState,
    viewer::Viewer,
};

/// Only owners may grant or take the owner role.
fn check_grant(actor: MemberRole, role: MemberRole) -> Result<()> {
    if role == MemberRole::Owner && actor != MemberRole::Owner {
        return Err(Error::Forbidden(
            "only owners may grant or change the owner role".into(),
        ));
    }
    Ok(())
}

/// Adds the user named `username` to `org` with `role` (admins and owners).
pub async fn add_member(
    state: &AppState,
    viewer: &Viewer,
    org: Uuid,
    username: &str,
    role: MemberRole,
) -> Result<memberships::Model> {
    let actor = viewer.require_role(org, MemberRole::Admin)?;
    check_grant(actor, role)?;
    let user = users::Entity::find()
        .filter(users::Column::Username.eq(username.trim().to_lowercase()))
        .one(&state.db)
        .await
        .context("loading a user")?
        .ok_or_else(|| Error::bad_input("input.username", "no user with this username"))?;
    let mut row = memberships::ActiveModel::new();
    row.organization_id = Set(org);
    row.user_id = Set(user.id);
    row.role = Set(role);
    let row = row
        .insert(&state.db)
        .await
        .on_unique_violation("input.username", "this user is already a member")?;
    audit::record(
        &state.db,
        viewer,
        Audit::new("member.add").org(org).target("user", user.id),
    )
    .await?;
    Ok(row)
}

async fn membership<C: ConnectionTrait>(
    db: &C,
    viewer: &Viewer,
    id: Uuid,
) -> Result<memberships::Model> {
    memberships::Entity::find_by_id(id)
        .filter(viewer.visible_orgs(memberships::Column::OrganizationId))
        .one(db)
        .await
        .context("loading a membership")?
        .ok_or(Error::NotFound("membership"))
}

async fn owners_left<C: ConnectionTrait>(db: &C, org: Uuid) -> Result<u64> {
    Ok(memberships::Entity::find()
        .filter(memberships::Column::OrganizationId.eq(org))
        .filter(memberships::Column::Role.eq(MemberRole::Owner))
        .count(db)
        .await?)
}

/// Changes a member's role. The last owner cannot step down.
pub async fn change_member_role(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
    role: MemberRole,
) -> Result<memberships::Model> {
    let txn = state.db.begin_write().await?;
    let current = membership(&txn, viewer, id).await?;
    let org = current.organization_id;
    let actor = viewer.require_role(org, MemberRole::Admin)?;
    check_grant(actor, role)?;
    check_grant(actor, current.role)?;
    if current.role == MemberRole::Owner
        && role != MemberRole::Owner
        && owners_left(&txn, org).await? <= 1
    {
        return Err(Error::Conflict {
            field: Some("input.role".into()),
            message: "the last owner cannot step down".into(),
        });
    }
    let mut model: memberships::ActiveModel = current.into();
    model.role = Set(role);
    let row = model.update(&txn).await?;
    audit::record(
        &txn,
        viewer,
        Audit::new("member.change_role")
            .org(org)
            .target("user", row.user_id),
    )
    .await?;
    txn.commit().await?;
    Ok(row)
}

/// Removes a member. The last owner cannot be removed.
pub async fn remove_member(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
) -> Result<memberships::Model> {
    let txn = state.db.begin_write().await?;
    let current = membership(&txn, viewer, id).await?;
    let org = current.organization_id;
    let actor = viewer.require_role(org, MemberRole::Admin)?;
    check_grant(actor, current.role)?;
    if current.role == MemberRole::Owner && owners_left(&txn, org).await? <= 1 {
        return Err(Error::Conflict {
            field: Some("input.id".into()),
            message: "the last owner cannot be removed".into(),
        });
    }
    memberships::Entity::delete_by_id(id).exec(&txn).await?;
    audit::record(
        &txn,
        viewer,
        Audit::new("member.remove")
            .org(org)
            .target("user", current.user_id),
    )
    .await?;
    txn.commit().await?;
    Ok(current)
}

/// The caller's role in `org` as stored now.
pub async fn current_role(
    state: &AppState,
    viewer: &Viewer,
    org: Uuid,
) -> Result<Option<MemberRole>> {
    match viewer {
        Viewer::User(u) => Ok(memberships::Entity::find()
            .filter(memberships::Column::OrganizationId.eq(org))
            .filter(memberships::Column::UserId.eq(u.id))
            .one(&state.db)
            .await
            .context("loading a membership")?
            .map(|m| m.role)),
        other => Ok(other.role_in(org)),
    }
}

/// The members of `org` with their users (any member may look).
pub async fn list_members(
    state: &AppState,
    viewer: &Viewer,
    org: Uuid,
) -> Result<Vec<(memberships::Model, users::Model)>> {
    viewer.require_role(org, MemberRole::Viewer)?;
    let rows = memberships::Entity::find()
        .filter(memberships::Column::OrganizationId.eq(org))
        .find_also_related(users::Entity)
        .order_by_asc(memberships::Column::Id)
        .all(&state.db)
        .await
        .context("listing members")?;
    Ok(rows
        .into_iter()
        .filter_map(|(m, u)| u.map(|u| (m, u)))
        .collect())
}
