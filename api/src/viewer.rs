//! [`Viewer`]: who is calling, and what they may see. Every service function takes one.
//!
//! The HTTP layer builds it per request (and the WebSocket layer per connection) from the
//! credentials presented, and puts it into the GraphQL request data; resolvers read it with
//! [`viewer`]. Services ask it for the caller's role in an organization and filter their SQL
//! with [`Viewer::visible_orgs`]. An object of an organization the caller is not a member
//! of reads as if it did not exist (`NOT_FOUND` / null); a role too low is `FORBIDDEN`.

use std::sync::Arc;

use async_graphql::Context;
use entity::{enums::MemberRole, memberships};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, QueryFilter, QuerySelect, QueryTrait,
    sea_query::SimpleExpr,
};
use uuid::Uuid;

use crate::{Error, Result};

/// The identity behind a request.
#[derive(Debug, Clone, Default)]
pub enum Viewer {
    /// No credentials were presented.
    #[default]
    Anonymous,
    /// A signed-in user (access token or user API key).
    User(UserViewer),
    /// An organization key, acting as its organization with a fixed role.
    OrgKey(OrgKeyViewer),
}

/// A user and their memberships, as of the start of the request.
#[derive(Debug, Clone)]
pub struct UserViewer {
    pub id: Uuid,
    pub username: String,
    /// Instance admin: manages users and the job console; no access to an organization's
    /// data by this flag alone.
    pub is_admin: bool,
    pub memberships: Arc<Vec<(Uuid, MemberRole)>>,
    /// The organization picked by `X-Org-ID`, already checked to be one of the memberships.
    pub active_org: Option<Uuid>,
    /// Set when the request authenticated with this user API key.
    pub api_key_id: Option<Uuid>,
}

/// An organization key.
#[derive(Debug, Clone)]
pub struct OrgKeyViewer {
    pub key_id: Uuid,
    pub organization_id: Uuid,
    pub role: MemberRole,
}

impl Viewer {
    /// The user behind the request, or `UNAUTHENTICATED`.
    pub fn require_user(&self) -> Result<&UserViewer> {
        match self {
            Viewer::User(u) => Ok(u),
            _ => Err(Error::Unauthenticated),
        }
    }

    /// Fails with `UNAUTHENTICATED` for anonymous callers.
    pub fn require_authenticated(&self) -> Result<()> {
        match self {
            Viewer::Anonymous => Err(Error::Unauthenticated),
            _ => Ok(()),
        }
    }

    /// Fails unless the caller is an instance admin.
    pub fn require_instance_admin(&self) -> Result<&UserViewer> {
        let user = self.require_user()?;
        if !user.is_admin {
            return Err(Error::Forbidden("only instance admins may do this".into()));
        }
        Ok(user)
    }

    /// The caller's role in `org`, if any.
    pub fn role_in(&self, org: Uuid) -> Option<MemberRole> {
        match self {
            Viewer::Anonymous => None,
            Viewer::User(u) => u
                .memberships
                .iter()
                .find(|(id, _)| *id == org)
                .map(|(_, role)| *role),
            Viewer::OrgKey(k) => (k.organization_id == org).then_some(k.role),
        }
    }

    /// The caller's role in `org` if it is at least `min`: `NOT_FOUND` for non-members (the
    /// organization's existence is not revealed), `FORBIDDEN` for a role too low.
    pub fn require_role(&self, org: Uuid, min: MemberRole) -> Result<MemberRole> {
        self.require_authenticated()?;
        let role = self.role_in(org).ok_or(Error::NotFound("organization"))?;
        if !role.at_least(min) {
            return Err(Error::Forbidden(format!(
                "this needs the {} role or above in the organization",
                format!("{min:?}").to_lowercase()
            )));
        }
        Ok(role)
    }

    /// The organization to act in: the explicit argument, else `X-Org-ID`, else the only
    /// one the caller belongs to.
    pub fn pick_org(&self, explicit: Option<Uuid>, field: &str) -> Result<Uuid> {
        if let Some(org) = explicit {
            return Ok(org);
        }
        match self {
            Viewer::Anonymous => Err(Error::Unauthenticated),
            Viewer::OrgKey(k) => Ok(k.organization_id),
            Viewer::User(u) => match (u.active_org, u.memberships.as_slice()) {
                (Some(org), _) => Ok(org),
                (None, [(only, _)]) => Ok(*only),
                _ => Err(Error::bad_input(
                    field,
                    "name the organization: pass it or send the X-Org-ID header",
                )),
            },
        }
    }

    /// A SQL condition on `column` (an organization id) that keeps only the organizations
    /// the caller belongs to. Memberships are read in the same statement, so a membership
    /// removed a moment ago no longer shows anything.
    pub fn visible_orgs<C: ColumnTrait>(&self, column: C) -> Condition {
        match self {
            // Always false, on every backend.
            Viewer::Anonymous => Condition::all()
                .add(column.is_null())
                .add(column.is_not_null()),
            Viewer::OrgKey(k) => Condition::all().add(column.eq(k.organization_id)),
            Viewer::User(u) => {
                let mine = memberships::Entity::find()
                    .select_only()
                    .column(memberships::Column::OrganizationId)
                    .filter(memberships::Column::UserId.eq(u.id))
                    .into_query();
                Condition::all().add(SimpleExpr::from(column.in_subquery(mine)))
            }
        }
    }
}

/// The viewer of the current GraphQL request (anonymous if none was attached).
pub fn viewer<'a>(ctx: &'a Context<'_>) -> &'a Viewer {
    static ANONYMOUS: Viewer = Viewer::Anonymous;
    ctx.data_opt::<Viewer>().unwrap_or(&ANONYMOUS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(memberships: Vec<(Uuid, MemberRole)>) -> Viewer {
        Viewer::User(UserViewer {
            id: Uuid::now_v7(),
            username: "u".into(),
            is_admin: false,
            memberships: Arc::new(memberships),
            active_org: None,
            api_key_id: None,
        })
    }

    #[test]
    fn roles_gate_and_hide() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let v = user(vec![(a, MemberRole::Member)]);
        assert!(v.require_role(a, MemberRole::Viewer).is_ok());
        assert_eq!(
            v.require_role(a, MemberRole::Admin).unwrap_err().code(),
            "FORBIDDEN"
        );
        assert_eq!(
            v.require_role(b, MemberRole::Viewer).unwrap_err().code(),
            "NOT_FOUND"
        );
        assert_eq!(
            Viewer::Anonymous
                .require_role(a, MemberRole::Viewer)
                .unwrap_err()
                .code(),
            "UNAUTHENTICATED"
        );
        assert_eq!(v.pick_org(None, "organizationId").unwrap(), a);
        let two = user(vec![(a, MemberRole::Owner), (b, MemberRole::Viewer)]);
        assert_eq!(
            two.pick_org(None, "organizationId").unwrap_err().code(),
            "BAD_USER_INPUT"
        );
    }
}
