//! The `autoglue` command line: `serve` (default), `migrate`, `schema`, `version`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use migration::{Migrator, MigratorTrait};

use crate::{
    auth::{
        self,
        keyring::{self, KeyRing},
    },
    config::{self, Config, SettingsArgs},
    db, graphql, startup, telemetry,
};

/// Autoglue: a GraphQL control plane for fleets of K3s clusters.
#[derive(Debug, Parser)]
#[command(name = "autoglue", version, about, long_about = None)]
pub struct Cli {
    /// TOML configuration file; flags and environment variables override it
    #[arg(long, env = "AUTOGLUE_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do; `serve` when none is given.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server: GraphQL API, GraphiQL, health endpoints
    Serve,
    /// Apply, roll back or list database migrations (default: up)
    Migrate {
        #[command(subcommand)]
        action: Option<MigrateAction>,
    },
    /// Master key: create one, or re-wrap every organization key under a new one
    Encrypt {
        #[command(subcommand)]
        action: EncryptAction,
    },
    /// Token signing keys: make the first one, or rotate
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Print the GraphQL schema (SDL)
    Schema,
    /// Print the version
    Version,
}

/// A migration action.
#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply every pending migration
    Up,
    /// Roll back the newest applied migrations
    Down {
        /// How many migrations to roll back
        #[arg(long, default_value_t = 1)]
        steps: u32,
        /// Roll back every migration (drops all tables)
        #[arg(long, conflicts_with = "steps")]
        all: bool,
    },
    /// List migrations and whether each is applied
    Status,
}

/// A master-key action.
#[derive(Debug, Subcommand)]
pub enum EncryptAction {
    /// Write a new random master key to a file (mode 0600; never overwrites)
    CreateMaster {
        /// Where to write it
        #[arg(long, default_value = "autoglue.master.key")]
        file: PathBuf,
    },
    /// Re-wrap every organization key and signing key under the key in FILE, in one transaction
    RotateMaster {
        /// The new master key (make it with `create-master`)
        #[arg(long)]
        new_key_file: PathBuf,
    },
}

/// A signing-key action.
#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Make a signing key if there is none; print the current key id
    Generate,
    /// Make a new signing key; the old one verifies until its tokens expire
    Rotate,
}

/// Runs the parsed command line to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    config::check_unknown_env(&Cli::command())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Schema => {
            print!("{}", graphql::sdl());
            Ok(())
        }
        Command::Version => {
            println!("autoglue {}", crate::VERSION);
            Ok(())
        }
        Command::Serve => {
            let config = Config::load(&cli.settings, cli.config.as_deref())?;
            telemetry::init(&config.log)?;
            let app = startup::Application::build(config).await?;
            app.run_until_stopped(startup::shutdown_signal()).await
        }
        Command::Encrypt {
            action: EncryptAction::CreateMaster { file },
        } => {
            let key = vault::create_master_key_file(&file)
                .with_context(|| format!("creating {}", file.display()))?;
            println!("wrote master key {} to {}", key.id(), file.display());
            Ok(())
        }
        Command::Encrypt {
            action: EncryptAction::RotateMaster { new_key_file },
        } => {
            let config = Config::load(&cli.settings, cli.config.as_deref())?;
            telemetry::init(&config.log)?;
            let new = vault::MasterKey::from_file(&new_key_file)
                .map_err(|e| anyhow::anyhow!("invalid {}: {e}", new_key_file.display()))?;
            let conn = db::connect(&config.database).await?;
            let old = auth::master_key::load(&config.auth, &config.database.url)?;
            let done = crate::services::master_rotation::rotate_master(&conn, &old, &new).await?;
            let skipped = match done.skipped {
                0 => String::new(),
                n => format!(" ({n} were under it already)"),
            };
            println!(
                "re-wrapped {} organization keys and {} signing keys under master key {}{skipped}; running servers refuse to wrap new keys until restarted with it: point AUTOGLUE_MASTER_KEY_FILE at {} and restart them now",
                done.org_keys,
                done.signing_keys,
                new.id(),
                new_key_file.display()
            );
            Ok(())
        }
        Command::Keys { action } => {
            let config = Config::load(&cli.settings, cli.config.as_deref())?;
            telemetry::init(&config.log)?;
            let conn = db::connect(&config.database).await?;
            let master = auth::master_key::load(&config.auth, &config.database.url)?;
            let instance = std::sync::Arc::new(master.instance_key());
            let ttl = config.auth.access_token_ttl;
            if let KeysAction::Rotate = action {
                let kid = keyring::rotate(&conn, &instance, &master.id(), ttl).await?;
                println!("rotated: new signing key {kid}");
            } else {
                KeyRing::load(conn, instance, master.id(), ttl).await?;
                println!("a signing key is in place");
            }
            Ok(())
        }
        Command::Migrate { action } => {
            let config = Config::load(&cli.settings, cli.config.as_deref())?;
            telemetry::init(&config.log)?;
            migrate(&config, action.unwrap_or(MigrateAction::Up)).await
        }
    }
}

async fn migrate(config: &Config, action: MigrateAction) -> anyhow::Result<()> {
    let conn = db::connect(&config.database).await?;
    match action {
        MigrateAction::Up => Migrator::up(&conn, None).await.context("migrate up")?,
        MigrateAction::Down { all: true, .. } => {
            Migrator::down(&conn, None).await.context("migrate down")?
        }
        MigrateAction::Down { steps, .. } => Migrator::down(&conn, Some(steps))
            .await
            .context("migrate down")?,
        MigrateAction::Status => {
            for m in Migrator::get_migration_with_status(&conn).await? {
                println!(
                    "{:<10} {}",
                    format!("{:?}", m.status()).to_lowercase(),
                    m.name()
                );
            }
        }
    }
    Ok(())
}
