//! Users in GraphQL: `me`, the `User` and `Membership` types, accounts and profiles.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{enums::MemberRole, memberships, user_emails, users};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use secrecy::SecretString;

use super::{
    api_keys::ApiKey,
    organizations::Organization,
    relay::{GlobalId, NodeKind},
    state,
};
use crate::{
    Error, Result,
    auth::passwords,
    services::{
        api_keys as keys, organizations as orgs,
        users::{self as service, NewUser, ProfileChange, Username, parse_email},
    },
    viewer::viewer,
};

/// A person who signs in.
#[derive(Clone)]
pub struct User(pub users::Model);

#[Object]
impl User {
    /// Global ID.
    pub async fn id(&self) -> ID {
        GlobalId::encode(NodeKind::User, self.0.id)
    }
    /// Unique sign-in name.
    async fn username(&self) -> &str {
        &self.0.username
    }
    /// Primary email address.
    async fn email(&self) -> Option<&str> {
        self.0.email.as_deref()
    }
    /// Name shown in the interface.
    async fn display_name(&self) -> Option<&str> {
        self.0.display_name.as_deref()
    }
    /// Picture URL.
    async fn avatar_url(&self) -> Option<&str> {
        self.0.avatar_url.as_deref()
    }
    /// Instance admin: manages users; no access to organizations by this flag alone.
    async fn is_admin(&self) -> bool {
        self.0.is_admin
    }
    /// Last successful sign-in.
    async fn last_login_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_login_at
    }
    /// When the account was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Email addresses known for this user (yourself, or any user for an instance admin).
    async fn emails(&self, ctx: &Context<'_>) -> Result<Vec<UserEmail>> {
        let me = viewer(ctx).require_user()?;
        if me.id != self.0.id && !me.is_admin {
            return Err(Error::Forbidden(
                "only your own email addresses are listed".into(),
            ));
        }
        let rows = user_emails::Entity::find()
            .filter(user_emails::Column::UserId.eq(self.0.id))
            .order_by_asc(user_emails::Column::Id)
            .all(&state(ctx).db)
            .await?;
        let mut emails: Vec<UserEmail> = rows
            .into_iter()
            .map(|e| UserEmail {
                email: e.email,
                verified: e.verified,
                primary: e.is_primary,
            })
            .collect();
        if let Some(primary) = &self.0.email
            && !emails.iter().any(|e| &e.email == primary)
        {
            emails.insert(
                0,
                UserEmail {
                    email: primary.clone(),
                    verified: false,
                    primary: true,
                },
            );
        }
        Ok(emails)
    }
    /// This user's memberships in organizations you can see.
    async fn memberships(&self, ctx: &Context<'_>) -> Result<Vec<Membership>> {
        let viewer = viewer(ctx);
        let rows = memberships::Entity::find()
            .filter(memberships::Column::UserId.eq(self.0.id))
            .filter(viewer.visible_orgs(memberships::Column::OrganizationId))
            .order_by_asc(memberships::Column::Id)
            .all(&state(ctx).db)
            .await?;
        Ok(rows.into_iter().map(Membership).collect())
    }
    /// Your API keys (only on yourself).
    async fn api_keys(&self, ctx: &Context<'_>) -> Result<Vec<ApiKey>> {
        let viewer = viewer(ctx);
        if viewer.require_user()?.id != self.0.id {
            return Err(Error::Forbidden("only your own API keys are listed".into()));
        }
        Ok(keys::list_api_keys(state(ctx), viewer)
            .await?
            .into_iter()
            .map(ApiKey)
            .collect())
    }
}

/// An email address of a user.
#[derive(SimpleObject)]
pub struct UserEmail {
    pub email: String,
    /// Confirmed by an identity provider.
    pub verified: bool,
    /// The address shown as the user's email.
    pub primary: bool,
}

/// A user's role in an organization.
#[derive(Clone)]
pub struct Membership(pub memberships::Model);

#[Object]
impl Membership {
    /// Global ID.
    pub async fn id(&self) -> ID {
        GlobalId::encode(NodeKind::Membership, self.0.id)
    }
    /// What the member may do.
    async fn role(&self) -> MemberRole {
        self.0.role
    }
    /// Since when.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// The organization.
    async fn organization(&self, ctx: &Context<'_>) -> Result<Organization> {
        orgs::find_organization(state(ctx), viewer(ctx), self.0.organization_id)
            .await?
            .map(Organization)
            .ok_or(Error::NotFound("organization"))
    }
    /// The member.
    async fn user(&self, ctx: &Context<'_>) -> Result<User> {
        service::find_user(&state(ctx).db, self.0.user_id)
            .await?
            .map(User)
            .ok_or(Error::NotFound("user"))
    }
}

#[derive(Default)]
pub struct UserQuery;

#[Object]
impl UserQuery {
    /// The signed-in user: profile, memberships, API keys.
    async fn me(&self, ctx: &Context<'_>) -> Result<User> {
        let me = viewer(ctx).require_user()?;
        service::find_user(&state(ctx).db, me.id)
            .await?
            .map(User)
            .ok_or(Error::Unauthenticated)
    }
}

/// Input of `createUser`.
#[derive(InputObject)]
pub struct CreateUserInput {
    pub username: String,
    pub email: Option<String>,
    /// At least 12 characters.
    pub password: String,
    /// Make the user an instance admin.
    #[graphql(default)]
    pub is_admin: bool,
}

/// Input of `signUp`.
#[derive(InputObject)]
pub struct SignUpInput {
    pub username: String,
    pub email: Option<String>,
    pub password: String,
}

/// Input of `changePassword`.
#[derive(InputObject)]
pub struct ChangePasswordInput {
    pub current_password: String,
    pub new_password: String,
}

/// Input of `updateProfile`: omitted fields stay, empty strings clear.
#[derive(InputObject)]
pub struct UpdateProfileInput {
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
}

/// A payload holding a user.
#[derive(SimpleObject)]
pub struct UserPayload {
    pub user: User,
}

fn new_user(
    username: &str,
    email: Option<&str>,
    password: String,
    is_admin: bool,
) -> Result<NewUser> {
    let password = SecretString::from(password);
    passwords::check_policy(&password, "input.password")?;
    Ok(NewUser {
        username: Username::parse(username, "input.username")?,
        email: email.map(|e| parse_email(e, "input.email")).transpose()?,
        password,
        is_admin,
    })
}

#[derive(Default)]
pub struct UserMutation;

#[Object]
impl UserMutation {
    /// Creates a user (instance admins only).
    async fn create_user(&self, ctx: &Context<'_>, input: CreateUserInput) -> Result<UserPayload> {
        let new = new_user(
            &input.username,
            input.email.as_deref(),
            input.password,
            input.is_admin,
        )?;
        let user = service::create_user(state(ctx), viewer(ctx), new).await?;
        Ok(UserPayload { user: User(user) })
    }

    /// Creates your account, when the instance allows open sign-up. Sign in afterwards.
    async fn sign_up(&self, ctx: &Context<'_>, input: SignUpInput) -> Result<UserPayload> {
        let new = new_user(
            &input.username,
            input.email.as_deref(),
            input.password,
            false,
        )?;
        let user = service::sign_up(state(ctx), new).await?;
        Ok(UserPayload { user: User(user) })
    }

    /// Changes your password; every session of yours is signed out.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        input: ChangePasswordInput,
    ) -> Result<UserPayload> {
        let (state, viewer) = (state(ctx), viewer(ctx));
        service::change_password(
            state,
            viewer,
            SecretString::from(input.current_password),
            SecretString::from(input.new_password),
        )
        .await?;
        let me = service::find_user(&state.db, viewer.require_user()?.id).await?;
        Ok(UserPayload {
            user: User(me.ok_or(Error::Unauthenticated)?),
        })
    }

    /// Edits your profile.
    async fn update_profile(
        &self,
        ctx: &Context<'_>,
        input: UpdateProfileInput,
    ) -> Result<UserPayload> {
        let change = ProfileChange {
            display_name: input.display_name,
            avatar_url: input.avatar_url,
        };
        let user = service::update_profile(state(ctx), viewer(ctx), change).await?;
        Ok(UserPayload { user: User(user) })
    }
}
