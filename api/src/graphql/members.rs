//! Membership changes over GraphQL.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use entity::enums::MemberRole;

use super::{
    relay::{GlobalId, NodeKind},
    state,
    users::Membership,
};
use crate::{Result, services::memberships as service, viewer::viewer};

/// Input of `addMember`.
#[derive(InputObject)]
pub struct AddMemberInput {
    /// The organization; defaults to the active one.
    pub organization_id: Option<ID>,
    /// The user to add.
    pub username: String,
    pub role: MemberRole,
}

/// Input of `changeMemberRole`.
#[derive(InputObject)]
pub struct ChangeMemberRoleInput {
    /// The membership.
    pub id: ID,
    pub role: MemberRole,
}

/// Input of `removeMember`.
#[derive(InputObject)]
pub struct RemoveMemberInput {
    /// The membership.
    pub id: ID,
}

/// A payload holding a membership.
#[derive(SimpleObject)]
pub struct MembershipPayload {
    pub membership: Membership,
}

#[derive(Default)]
pub struct MemberMutation;

#[Object]
impl MemberMutation {
    /// Adds a user to an organization (admins and owners; owners to grant owner).
    async fn add_member(
        &self,
        ctx: &Context<'_>,
        input: AddMemberInput,
    ) -> Result<MembershipPayload> {
        let viewer = viewer(ctx);
        let org = input
            .organization_id
            .as_ref()
            .map(|id| GlobalId::expect(id, NodeKind::Organization, "input.organizationId"))
            .transpose()?;
        let org = viewer.pick_org(org, "input.organizationId")?;
        let m = service::add_member(state(ctx), viewer, org, &input.username, input.role).await?;
        Ok(MembershipPayload {
            membership: Membership(m),
        })
    }

    /// Changes a member's role; the last owner cannot step down.
    async fn change_member_role(
        &self,
        ctx: &Context<'_>,
        input: ChangeMemberRoleInput,
    ) -> Result<MembershipPayload> {
        let id = GlobalId::expect(&input.id, NodeKind::Membership, "input.id")?;
        let m = service::change_member_role(state(ctx), viewer(ctx), id, input.role).await?;
        Ok(MembershipPayload {
            membership: Membership(m),
        })
    }

    /// Removes a member; the last owner cannot be removed.
    async fn remove_member(
        &self,
        ctx: &Context<'_>,
        input: RemoveMemberInput,
    ) -> Result<MembershipPayload> {
        let id = GlobalId::expect(&input.id, NodeKind::Membership, "input.id")?;
        let m = service::remove_member(state(ctx), viewer(ctx), id).await?;
        Ok(MembershipPayload {
            membership: Membership(m),
        })
    }
}
