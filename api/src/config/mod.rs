//! Configuration: one typed [`Config`], read once in `main` and passed down.
//!
//! Each setting comes from, in order of precedence, a command-line flag, its environment
//! variable, the optional TOML file (`--config` / `AUTOGLUE_CONFIG`), and finally the embedded
//! default, so that nothing set at all means "SQLite file in the working directory, no service
//! needed". A bad value stops start-up with one line naming where it came from; unknown TOML
//! keys and unknown `AUTOGLUE_*` variables are errors too, because a typo that silently falls
//! back to a default is worse than a refusal to start.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use anyhow::{Context, bail};
use clap::Args;
use secrecy::SecretString;

mod database_url;
mod limits;
mod redis_url;
pub use database_url::DatabaseUrl;
pub use limits::LimitSettings;
pub use redis_url::RedisUrl;

/// Settings that every subcommand accepts (flags or environment variables).
#[derive(Debug, Default, Clone, Args)]
pub struct SettingsArgs {
    /// Address the HTTP server listens on [default: 127.0.0.1:8080]
    #[arg(long, env = "AUTOGLUE_LISTEN", global = true, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Database: postgres://user:pass@host/db or sqlite:path [default: sqlite://autoglue.db]
    #[arg(
        long,
        env = "DATABASE_URL",
        global = true,
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Largest database connection pool [default: 10]
    #[arg(
        long,
        env = "AUTOGLUE_DATABASE_MAX_CONNECTIONS",
        global = true,
        value_name = "N"
    )]
    pub database_max_connections: Option<String>,
    /// Redis: redis://[user:pass@]host[:port][/db]; event bus across instances (and job queue) [default: none, in process]
    #[arg(
        long,
        env = "REDIS_URL",
        global = true,
        value_name = "URL",
        hide_env_values = true
    )]
    pub redis_url: Option<String>,
    /// Namespace of this deployment in Redis: events travel on `<prefix>:events` [default: autoglue]
    #[arg(
        long,
        env = "AUTOGLUE_REDIS_PREFIX",
        global = true,
        value_name = "PREFIX"
    )]
    pub redis_prefix: Option<String>,
    /// What `serve` runs: api (HTTP and GraphQL), worker (workflow runs) or all [default: all]
    #[arg(long, env = "AUTOGLUE_ROLE", global = true, value_name = "ROLE")]
    pub role: Option<String>,
    /// Workflow runs one worker process drives at a time [default: 16]
    #[arg(long, env = "AUTOGLUE_WORKERS", global = true, value_name = "N")]
    pub workers: Option<String>,
    /// Seconds a worker holds a job without renewing it; a crashed worker's runs resume elsewhere after this [default: 30]
    #[arg(
        long,
        env = "AUTOGLUE_JOB_LEASE_SECS",
        global = true,
        value_name = "SECS"
    )]
    pub job_lease_secs: Option<String>,
    /// Days finished workflow runs are kept before the scheduled prune deletes them [default: 7]
    #[arg(
        long,
        env = "AUTOGLUE_RUN_RETENTION_DAYS",
        global = true,
        value_name = "DAYS"
    )]
    pub run_retention_days: Option<String>,
    /// Register the test workflows (test.sleep, test.flaky, …): for tests and demos only
    #[arg(
        long,
        env = "AUTOGLUE_TEST_WORKFLOWS",
        global = true,
        value_name = "BOOL",
        hide = true
    )]
    pub test_workflows: Option<String>,
    /// Apply pending migrations when `serve` starts [default: true]
    #[arg(long, env = "AUTOGLUE_MIGRATE", global = true, value_name = "BOOL")]
    pub migrate: Option<String>,
    /// Log filter, tracing's env-filter syntax [default: info]
    #[arg(long, env = "AUTOGLUE_LOG", global = true, value_name = "FILTER")]
    pub log: Option<String>,
    /// Log format: text or json [default: text]
    #[arg(
        long,
        env = "AUTOGLUE_LOG_FORMAT",
        global = true,
        value_name = "FORMAT"
    )]
    pub log_format: Option<String>,
    /// Largest page a connection field returns (`first` / `last`) [default: 100]
    #[arg(long, env = "AUTOGLUE_MAX_PAGE_SIZE", global = true, value_name = "N")]
    pub max_page_size: Option<String>,
    /// Deepest query accepted [default: 15]
    #[arg(
        long,
        env = "AUTOGLUE_GRAPHQL_MAX_DEPTH",
        global = true,
        value_name = "N"
    )]
    pub graphql_max_depth: Option<String>,
    /// Most complex query accepted (fields, times page sizes) [default: 50000]
    #[arg(
        long,
        env = "AUTOGLUE_GRAPHQL_MAX_COMPLEXITY",
        global = true,
        value_name = "N"
    )]
    pub graphql_max_complexity: Option<String>,
    /// Most aliases in one query [default: 30]
    #[arg(
        long,
        env = "AUTOGLUE_GRAPHQL_MAX_ALIASES",
        global = true,
        value_name = "N"
    )]
    pub graphql_max_aliases: Option<String>,
    /// Answer introspection queries (GraphiQL needs them) [default: true]
    #[arg(
        long,
        env = "AUTOGLUE_GRAPHQL_INTROSPECTION",
        global = true,
        value_name = "BOOL"
    )]
    pub graphql_introspection: Option<String>,
    /// Master key, base64 (32 bytes); wraps every organization's data key
    #[arg(
        long,
        env = "AUTOGLUE_MASTER_KEY",
        global = true,
        value_name = "KEY",
        hide_env_values = true
    )]
    pub master_key: Option<String>,
    /// File holding the master key [default with SQLite: next to the database, created on first start]
    #[arg(
        long,
        env = "AUTOGLUE_MASTER_KEY_FILE",
        global = true,
        value_name = "FILE"
    )]
    pub master_key_file: Option<String>,
    /// Username of the instance admin created on start when no user exists
    #[arg(
        long,
        env = "AUTOGLUE_ADMIN_USERNAME",
        global = true,
        value_name = "NAME"
    )]
    pub admin_username: Option<String>,
    /// Password of that admin (at least 12 characters)
    #[arg(
        long,
        env = "AUTOGLUE_ADMIN_PASSWORD",
        global = true,
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub admin_password: Option<String>,
    /// Lifetime of access tokens, in seconds [default: 900]
    #[arg(
        long,
        env = "AUTOGLUE_ACCESS_TOKEN_TTL",
        global = true,
        value_name = "SECONDS"
    )]
    pub access_token_ttl: Option<String>,
    /// Lifetime of refresh tokens, in seconds [default: 2592000, 30 days]
    #[arg(
        long,
        env = "AUTOGLUE_REFRESH_TOKEN_TTL",
        global = true,
        value_name = "SECONDS"
    )]
    pub refresh_token_ttl: Option<String>,
    /// Days a signing key signs before it is rotated automatically [default: 30]
    #[arg(
        long,
        env = "AUTOGLUE_SIGNING_KEY_ROTATION_DAYS",
        global = true,
        value_name = "DAYS"
    )]
    pub signing_key_rotation_days: Option<String>,
    /// Public base URL of this server, for redirects [default: http://<listen>]
    #[arg(long, env = "AUTOGLUE_PUBLIC_URL", global = true, value_name = "URL")]
    pub public_url: Option<String>,
    /// DNS server (`IP:port`) that checks email domain claims' TXT records [default: the
    /// system's resolvers]
    #[arg(
        long,
        env = "AUTOGLUE_DNS_RESOLVER",
        global = true,
        value_name = "ADDR"
    )]
    pub dns_resolver: Option<String>,
    /// OpenID Connect issuer URL; enables /auth/oidc/login
    #[arg(long, env = "AUTOGLUE_OIDC_ISSUER", global = true, value_name = "URL")]
    pub oidc_issuer: Option<String>,
    /// OpenID Connect client id
    #[arg(
        long,
        env = "AUTOGLUE_OIDC_CLIENT_ID",
        global = true,
        value_name = "ID"
    )]
    pub oidc_client_id: Option<String>,
    /// OpenID Connect client secret
    #[arg(
        long,
        env = "AUTOGLUE_OIDC_CLIENT_SECRET",
        global = true,
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub oidc_client_secret: Option<String>,
    /// Let anyone create an account with `signUp` [default: false]
    #[arg(long, env = "AUTOGLUE_SIGNUP", global = true, value_name = "BOOL")]
    pub signup: Option<String>,
}

/// The whole configuration of one process.
#[derive(Debug, Clone)]
pub struct Config {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    /// Redis, for the event bus across instances (and the job queue); `None` keeps both
    /// in process / in the database.
    pub redis_url: Option<RedisUrl>,
    /// Prefix of every Redis key and channel of this deployment.
    pub redis_prefix: String,
    pub log: LogSettings,
    pub graphql: GraphqlSettings,
    pub auth: AuthSettings,
    pub workflows: WorkflowSettings,
    pub limits: LimitSettings,
}

/// What `serve` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// HTTP and GraphQL only; runs are enqueued for worker processes.
    Api,
    /// Workflow workers only (and the health endpoints).
    Worker,
    /// Both, in one process.
    All,
}

impl Role {
    /// Whether this process serves the API.
    pub fn serves_api(self) -> bool {
        matches!(self, Role::Api | Role::All)
    }

    /// Whether this process drives workflow runs.
    pub fn runs_workers(self) -> bool {
        matches!(self, Role::Worker | Role::All)
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "api" => Ok(Role::Api),
            "worker" => Ok(Role::Worker),
            "all" => Ok(Role::All),
            _ => Err(format!("{s:?} is not a role (api, worker or all)")),
        }
    }
}

/// The workflow engine and its workers.
#[derive(Debug, Clone)]
pub struct WorkflowSettings {
    pub role: Role,
    /// Runs driven at a time by this process's workers.
    pub workers: usize,
    /// Finished runs older than this are pruned.
    pub run_retention: Duration,
    /// How long a worker holds a job between renewals: the bound on how long a crashed
    /// worker's run waits before another worker resumes it.
    pub job_lease: Duration,
    /// Whether the test workflows are registered.
    pub test_workflows: bool,
    /// How often a running step checks for cancellation (code-only; tests shorten it).
    pub cancel_poll: Duration,
}

impl Default for WorkflowSettings {
    fn default() -> Self {
        WorkflowSettings {
            role: Role::All,
            workers: 16,
            run_retention: Duration::from_secs(7 * 86_400),
            job_lease: Duration::from_secs(30),
            test_workflows: false,
            cancel_poll: Duration::from_millis(500),
        }
    }
}

/// Identity and secrets.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// The master key itself, when given inline.
    pub master_key: Option<SecretString>,
    /// Where the master key is read from; with neither this nor `master_key`, SQLite keeps
    /// it next to the database file (created on first start) and PostgreSQL refuses to start.
    pub master_key_file: Option<PathBuf>,
    /// The instance admin bootstrapped on an empty user table.
    pub admin: Option<AdminBootstrap>,
    /// Lifetime of an access token (JWT).
    pub access_token_ttl: Duration,
    /// Lifetime of a refresh token.
    pub refresh_token_ttl: Duration,
    /// How long one signing key signs before automatic rotation.
    pub signing_key_rotation: Duration,
    /// Whether `signUp` is open to anyone.
    pub signup_enabled: bool,
    /// Public base URL (no trailing slash); `None` means `http://<listen>`.
    pub public_url: Option<url::Url>,
    /// The DNS server that answers email domain challenges; `None`: the system's.
    pub dns_resolver: Option<SocketAddr>,
    /// Sign-in through an OpenID Connect provider.
    pub oidc: Option<OidcSettings>,
}

/// An OpenID Connect provider (authorization code flow with PKCE).
#[derive(Debug, Clone)]
pub struct OidcSettings {
    pub issuer: url::Url,
    pub client_id: String,
    pub client_secret: SecretString,
}

/// `AUTOGLUE_ADMIN_USERNAME` / `AUTOGLUE_ADMIN_PASSWORD`.
#[derive(Debug, Clone)]
pub struct AdminBootstrap {
    pub username: String,
    pub password: SecretString,
}

/// The HTTP listener.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Address to bind; port 0 picks a free port (tests).
    pub listen: SocketAddr,
}

/// The database and its pool.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// Where the data lives; PostgreSQL in production, SQLite embedded.
    pub url: DatabaseUrl,
    /// Upper bound of the connection pool.
    pub max_connections: u32,
    /// Run pending migrations at `serve` start.
    pub migrate_on_start: bool,
}

/// Logging.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// tracing env-filter directives, e.g. `info,autoglue=debug`.
    pub filter: String,
    /// Human text or one JSON object per line.
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Limits of the GraphQL API.
#[derive(Debug, Clone)]
pub struct GraphqlSettings {
    /// Largest `first` / `last` a connection accepts; also the page size when neither is given.
    pub max_page_size: u32,
    /// Deepest selection accepted.
    pub max_depth: usize,
    /// Highest complexity accepted: one per field, list fields times their page size.
    pub max_complexity: usize,
    /// Most aliases in one document (aliases multiply work without adding depth).
    pub max_aliases: usize,
    /// Whether `__schema` / `__type` are answered.
    pub introspection: bool,
}

impl Default for Config {
    /// The embedded default: SQLite file `autoglue.db` in the working directory.
    fn default() -> Self {
        Config {
            http: HttpSettings {
                listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            },
            database: DatabaseSettings {
                url: DatabaseUrl::embedded_default(),
                max_connections: 10,
                migrate_on_start: true,
            },
            redis_url: None,
            redis_prefix: "autoglue".into(),
            workflows: WorkflowSettings::default(),
            log: LogSettings {
                filter: "info".into(),
                format: LogFormat::Text,
            },
            graphql: GraphqlSettings {
                max_page_size: 100,
                max_depth: 15,
                max_complexity: 50_000,
                max_aliases: 30,
                introspection: true,
            },
            auth: AuthSettings {
                master_key: None,
                master_key_file: None,
                admin: None,
                access_token_ttl: Duration::from_secs(900),
                refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
                signing_key_rotation: Duration::from_secs(30 * 24 * 3600),
                signup_enabled: false,
                public_url: None,
                dns_resolver: None,
                oidc: None,
            },
            limits: LimitSettings::default(),
        }
    }
}

impl Config {
    /// Builds the configuration from flags/environment (`args`) over the optional TOML file.
    pub fn load(args: &SettingsArgs, file: Option<&Path>) -> anyhow::Result<Config> {
        let file = file.map(ConfigFile::read).transpose()?;
        let layers = Layers {
            file: file.as_ref(),
        };
        let mut config = Config::default();
        let d = &mut config;
        layers.set(
            &mut d.http.listen,
            &args.listen,
            "listen",
            "AUTOGLUE_LISTEN",
        )?;
        layers.set(
            &mut d.database.url,
            &args.database_url,
            "database_url",
            "DATABASE_URL",
        )?;
        layers.set(
            &mut d.database.max_connections,
            &args.database_max_connections,
            "database_max_connections",
            "AUTOGLUE_DATABASE_MAX_CONNECTIONS",
        )?;
        let mut redis = Given(None);
        layers.set(&mut redis, &args.redis_url, "redis_url", "REDIS_URL")?;
        d.redis_url = redis.0;
        layers.set(
            &mut d.redis_prefix,
            &args.redis_prefix,
            "redis_prefix",
            "AUTOGLUE_REDIS_PREFIX",
        )?;
        let w = &mut d.workflows;
        layers.set(&mut w.role, &args.role, "role", "AUTOGLUE_ROLE")?;
        layers.set(&mut w.workers, &args.workers, "workers", "AUTOGLUE_WORKERS")?;
        if w.workers == 0 || w.workers > 1024 {
            bail!("workers (AUTOGLUE_WORKERS) must be between 1 and 1024");
        }
        let mut lease = Seconds(w.job_lease);
        layers.set(
            &mut lease,
            &args.job_lease_secs,
            "job_lease_secs",
            "AUTOGLUE_JOB_LEASE_SECS",
        )?;
        w.job_lease = lease.0;
        let mut retention = w.run_retention.as_secs() / 86_400;
        layers.set(
            &mut retention,
            &args.run_retention_days,
            "run_retention_days",
            "AUTOGLUE_RUN_RETENTION_DAYS",
        )?;
        w.run_retention = Duration::from_secs(retention.max(1) * 86_400);
        let mut test_workflows = Flag(w.test_workflows);
        layers.set(
            &mut test_workflows,
            &args.test_workflows,
            "test_workflows",
            "AUTOGLUE_TEST_WORKFLOWS",
        )?;
        w.test_workflows = test_workflows.0;
        let mut migrate = Flag(d.database.migrate_on_start);
        layers.set(&mut migrate, &args.migrate, "migrate", "AUTOGLUE_MIGRATE")?;
        d.database.migrate_on_start = migrate.0;
        layers.set(&mut d.log.filter, &args.log, "log", "AUTOGLUE_LOG")?;
        layers.set(
            &mut d.log.format,
            &args.log_format,
            "log_format",
            "AUTOGLUE_LOG_FORMAT",
        )?;
        layers.set(
            &mut d.graphql.max_page_size,
            &args.max_page_size,
            "max_page_size",
            "AUTOGLUE_MAX_PAGE_SIZE",
        )?;
        let g = &mut d.graphql;
        layers.set(
            &mut g.max_depth,
            &args.graphql_max_depth,
            "graphql_max_depth",
            "AUTOGLUE_GRAPHQL_MAX_DEPTH",
        )?;
        layers.set(
            &mut g.max_complexity,
            &args.graphql_max_complexity,
            "graphql_max_complexity",
            "AUTOGLUE_GRAPHQL_MAX_COMPLEXITY",
        )?;
        layers.set(
            &mut g.max_aliases,
            &args.graphql_max_aliases,
            "graphql_max_aliases",
            "AUTOGLUE_GRAPHQL_MAX_ALIASES",
        )?;
        let mut introspection = Flag(g.introspection);
        layers.set(
            &mut introspection,
            &args.graphql_introspection,
            "graphql_introspection",
            "AUTOGLUE_GRAPHQL_INTROSPECTION",
        )?;
        g.introspection = introspection.0;
        let a = &mut d.auth;
        let mut secret = Text(None);
        layers.set(
            &mut secret,
            &args.master_key,
            "master_key",
            "AUTOGLUE_MASTER_KEY",
        )?;
        a.master_key = secret.0.map(SecretString::from);
        let mut file = Text(None);
        layers.set(
            &mut file,
            &args.master_key_file,
            "master_key_file",
            "AUTOGLUE_MASTER_KEY_FILE",
        )?;
        a.master_key_file = file.0.map(PathBuf::from);
        if a.master_key.is_some() && a.master_key_file.is_some() {
            bail!("set AUTOGLUE_MASTER_KEY or AUTOGLUE_MASTER_KEY_FILE, not both");
        }
        let (mut user, mut password) = (Text(None), Text(None));
        layers.set(
            &mut user,
            &args.admin_username,
            "admin_username",
            "AUTOGLUE_ADMIN_USERNAME",
        )?;
        layers.set(
            &mut password,
            &args.admin_password,
            "admin_password",
            "AUTOGLUE_ADMIN_PASSWORD",
        )?;
        a.admin = match (user.0, password.0) {
            (Some(username), Some(password)) => Some(AdminBootstrap {
                username,
                password: SecretString::from(password),
            }),
            (None, None) => None,
            _ => bail!("AUTOGLUE_ADMIN_USERNAME and AUTOGLUE_ADMIN_PASSWORD go together"),
        };
        let mut seconds = Seconds(a.access_token_ttl);
        layers.set(
            &mut seconds,
            &args.access_token_ttl,
            "access_token_ttl",
            "AUTOGLUE_ACCESS_TOKEN_TTL",
        )?;
        a.access_token_ttl = seconds.0;
        let mut seconds = Seconds(a.refresh_token_ttl);
        layers.set(
            &mut seconds,
            &args.refresh_token_ttl,
            "refresh_token_ttl",
            "AUTOGLUE_REFRESH_TOKEN_TTL",
        )?;
        a.refresh_token_ttl = seconds.0;
        let mut days = a.signing_key_rotation.as_secs() / 86_400;
        layers.set(
            &mut days,
            &args.signing_key_rotation_days,
            "signing_key_rotation_days",
            "AUTOGLUE_SIGNING_KEY_ROTATION_DAYS",
        )?;
        a.signing_key_rotation = Duration::from_secs(days.max(1) * 86_400);
        let mut public = Text(None);
        layers.set(
            &mut public,
            &args.public_url,
            "public_url",
            "AUTOGLUE_PUBLIC_URL",
        )?;
        a.public_url = public
            .0
            .map(|u| parse_http_url(&u, "AUTOGLUE_PUBLIC_URL"))
            .transpose()?;
        let mut resolver = Given(None);
        layers.set(
            &mut resolver,
            &args.dns_resolver,
            "dns_resolver",
            "AUTOGLUE_DNS_RESOLVER",
        )?;
        a.dns_resolver = resolver.0;
        let (mut issuer, mut id, mut secret) = (Text(None), Text(None), Text(None));
        layers.set(
            &mut issuer,
            &args.oidc_issuer,
            "oidc_issuer",
            "AUTOGLUE_OIDC_ISSUER",
        )?;
        layers.set(
            &mut id,
            &args.oidc_client_id,
            "oidc_client_id",
            "AUTOGLUE_OIDC_CLIENT_ID",
        )?;
        layers.set(
            &mut secret,
            &args.oidc_client_secret,
            "oidc_client_secret",
            "AUTOGLUE_OIDC_CLIENT_SECRET",
        )?;
        a.oidc = match (issuer.0, id.0, secret.0) {
            (None, None, None) => None,
            (Some(issuer), Some(client_id), Some(secret)) => Some(OidcSettings {
                issuer: parse_http_url(&issuer, "AUTOGLUE_OIDC_ISSUER")?,
                client_id,
                client_secret: SecretString::from(secret),
            }),
            _ => bail!(
                "AUTOGLUE_OIDC_ISSUER, AUTOGLUE_OIDC_CLIENT_ID and AUTOGLUE_OIDC_CLIENT_SECRET go together"
            ),
        };
        let mut signup = Flag(a.signup_enabled);
        layers.set(&mut signup, &args.signup, "signup", "AUTOGLUE_SIGNUP")?;
        a.signup_enabled = signup.0;
        if d.database.max_connections == 0 {
            bail!(
                "database_max_connections (AUTOGLUE_DATABASE_MAX_CONNECTIONS) must be at least 1"
            );
        }
        if d.redis_prefix.is_empty() || d.redis_prefix.contains(char::is_whitespace) {
            bail!("redis_prefix (AUTOGLUE_REDIS_PREFIX) must be a non-empty word");
        }
        if d.graphql.max_page_size == 0 {
            bail!("max_page_size (AUTOGLUE_MAX_PAGE_SIZE) must be at least 1");
        }
        Ok(config)
    }
}

/// Refuses `AUTOGLUE_*` variables that no setting reads: they are almost always typos.
pub fn check_unknown_env(cmd: &clap::Command) -> anyhow::Result<()> {
    let mut known = BTreeSet::new();
    collect_env_names(cmd, &mut known);
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("AUTOGLUE_") && !known.contains(name) {
            bail!("unknown environment variable {name}; see `autoglue --help` for the settings");
        }
    }
    Ok(())
}

fn collect_env_names(cmd: &clap::Command, known: &mut BTreeSet<String>) {
    for arg in cmd.get_arguments() {
        if let Some(env) = arg.get_env().and_then(|e| e.to_str()) {
            known.insert(env.to_owned());
        }
    }
    for sub in cmd.get_subcommands() {
        collect_env_names(sub, known);
    }
}

/// The optional TOML file: a flat table whose keys are the settings' names.
struct ConfigFile {
    path: String,
    table: toml::Table,
}

impl ConfigFile {
    const KEYS: &[&str] = &[
        "listen",
        "database_url",
        "database_max_connections",
        "redis_url",
        "redis_prefix",
        "role",
        "workers",
        "run_retention_days",
        "job_lease_secs",
        "test_workflows",
        "migrate",
        "log",
        "log_format",
        "max_page_size",
        "graphql_max_depth",
        "graphql_max_complexity",
        "graphql_max_aliases",
        "graphql_introspection",
        "master_key",
        "master_key_file",
        "admin_username",
        "admin_password",
        "access_token_ttl",
        "refresh_token_ttl",
        "signing_key_rotation_days",
        "signup",
        "public_url",
        "dns_resolver",
        "oidc_issuer",
        "oidc_client_id",
        "oidc_client_secret",
    ];

    fn read(path: &Path) -> anyhow::Result<ConfigFile> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read configuration file {shown}"))?;
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("{shown}: {}", e.message()))?;
        if let Some(key) = table.keys().find(|k| !Self::KEYS.contains(&k.as_str())) {
            bail!("unknown key `{key}` in {shown}");
        }
        Ok(ConfigFile { path: shown, table })
    }

    fn value(&self, key: &str) -> anyhow::Result<Option<String>> {
        Ok(match self.table.get(key) {
            None => None,
            Some(toml::Value::String(s)) => Some(s.clone()),
            Some(toml::Value::Integer(i)) => Some(i.to_string()),
            Some(toml::Value::Boolean(b)) => Some(b.to_string()),
            Some(_) => bail!(
                "`{key}` in {} must be a string, a number or a boolean",
                self.path
            ),
        })
    }
}

struct Layers<'a> {
    file: Option<&'a ConfigFile>,
}

impl Layers<'_> {
    /// Overwrites `slot` with the flag/environment value, else the file's, parsed as `T`.
    fn set<T>(&self, slot: &mut T, arg: &Option<String>, key: &str, env: &str) -> anyhow::Result<()>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let (raw, origin) = match (arg, self.file) {
            (Some(v), _) => (v.clone(), format!("--{} / {env}", key.replace('_', "-"))),
            (None, Some(file)) => match file.value(key)? {
                Some(v) => (v, format!("`{key}` in {}", file.path)),
                None => return Ok(()),
            },
            (None, None) => return Ok(()),
        };
        *slot = raw
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid {origin}: {e}"))?;
        Ok(())
    }
}

/// An http(s) URL without a trailing slash.
fn parse_http_url(raw: &str, name: &str) -> anyhow::Result<url::Url> {
    let url = url::Url::parse(raw.trim_end_matches('/'))
        .map_err(|e| anyhow::anyhow!("invalid {name}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("invalid {name}: must be an http(s) URL");
    }
    Ok(url)
}

/// Any text, kept as given.
struct Text(Option<String>);

impl FromStr for Text {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Text(Some(s.to_owned())))
    }
}

/// A setting without a default: `None` until given, then parsed as `T`.
struct Given<T>(Option<T>);

impl<T: FromStr> FromStr for Given<T> {
    type Err = T::Err;
    fn from_str(s: &str) -> Result<Self, T::Err> {
        s.parse().map(|v| Given(Some(v)))
    }
}

/// A positive number of seconds.
struct Seconds(Duration);

impl FromStr for Seconds {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Seconds(Duration::from_secs(n))),
            _ => Err(format!("{s:?} is not a positive number of seconds")),
        }
    }
}

/// A boolean that also reads `yes`/`no`, `on`/`off` and `1`/`0`.
struct Flag(bool);

impl FromStr for Flag {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(Flag(true)),
            "false" | "no" | "off" | "0" => Ok(Flag(false)),
            _ => Err(format!("{s:?} is not a boolean (true or false)")),
        }
    }
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("{s:?} is not a log format (text or json)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> SettingsArgs {
        SettingsArgs::default()
    }

    #[test]
    fn nothing_set_means_embedded_defaults() {
        let c = Config::load(&args(), None).unwrap();
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
        assert!(c.database.url.is_sqlite());
        assert!(c.database.migrate_on_start);
    }

    #[test]
    fn flag_beats_file_and_file_beats_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\nmax_page_size = 7\nmigrate = false\n",
        )
        .unwrap();
        let mut a = args();
        let c = Config::load(&a, Some(&path)).unwrap();
        assert_eq!(c.http.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(c.graphql.max_page_size, 7);
        assert!(!c.database.migrate_on_start);
        a.listen = Some("127.0.0.1:1".into());
        assert_eq!(Config::load(&a, Some(&path)).unwrap().http.listen.port(), 1);
    }

    #[test]
    fn bad_values_name_their_origin() {
        let mut a = args();
        a.listen = Some("nowhere".into());
        let e = Config::load(&a, None).unwrap_err().to_string();
        assert!(e.contains("AUTOGLUE_LISTEN"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let e = Config::load(&args(), Some(&path)).unwrap_err().to_string();
        assert!(e.contains("unknown key `lisen`"), "{e}");

        std::fs::write(&path, "log_format = \"xml\"\n").unwrap();
        let e = Config::load(&args(), Some(&path)).unwrap_err().to_string();
        assert!(e.contains("`log_format` in") && e.contains("xml"), "{e}");
    }

    #[test]
    fn redis_is_off_until_given_and_never_shows_its_password() {
        assert!(Config::load(&args(), None).unwrap().redis_url.is_none());
        let mut a = args();
        a.redis_url = Some("redis://:hunter2@cache:6379".into());
        a.redis_prefix = Some("staging".into());
        let c = Config::load(&a, None).unwrap();
        assert_eq!(c.redis_url.unwrap().expose(), "redis://:hunter2@cache:6379");
        assert_eq!(c.redis_prefix, "staging");
        a.redis_url = Some("memcache://:hunter2@cache".into());
        let e = Config::load(&a, None).unwrap_err().to_string();
        assert!(e.contains("REDIS_URL") && !e.contains("hunter2"), "{e}");
        a.redis_url = None;
        a.redis_prefix = Some("two words".into());
        assert!(Config::load(&a, None).is_err());
    }

    #[test]
    fn zero_page_size_is_refused() {
        let mut a = args();
        a.max_page_size = Some("0".into());
        assert!(Config::load(&a, None).is_err());
    }
}
