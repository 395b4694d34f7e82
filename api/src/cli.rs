//! The `autoglue` command line: `serve` (default), `migrate`, `schema`, `version`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use migration::{Migrator, MigratorTrait};

use crate::{
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
