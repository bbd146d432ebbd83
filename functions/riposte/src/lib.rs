//! The `riposte` command line: `serve`, `policy check`, `replay`, `incident list|show|release`.
//! On AWS Lambda, where the bootstrap runs with no arguments, it serves.

pub mod config;
mod executor;
mod incident_cmd;
pub mod lambda;
pub mod logging;
mod replay;
mod serve;
pub mod startup;
pub mod traces;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use riposte_core::policy::PolicySet;

/// The example policy, embedded so `riposte serve` works on a fresh machine with no files.
pub const EXAMPLE_POLICY: &str = include_str!("../../../infra/examples/policy.yaml");

#[derive(Parser)]
#[command(name = "riposte", version, about = "Security alerts on Google Cloud in, incident response out.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the intake endpoints (POST /v1/falco, /v1/monitoring, /v1/pubsub).
    Serve(serve::ServeArgs),
    /// Work with policy files.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Show which policies a saved payload matches and why, and the dry-run plan. Needs no server.
    Replay(replay::ReplayArgs),
    /// Create an approval signing key (Ed25519) and print it with its public half.
    Keygen {
        /// Key id, carried in every token so keys can rotate [default: riposte-YYYYMMDD].
        #[arg(long)]
        kid: Option<String>,
    },
    /// Inspect recorded incidents.
    Incident {
        #[command(subcommand)]
        command: incident_cmd::IncidentCommand,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate a policy file; lists every error and exits non-zero if there is any.
    Check {
        /// The policy file.
        file: PathBuf,
    },
}

/// A failure of a command, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad configuration or input (exit 2).
    #[error("{0}")]
    Usage(String),
    /// Something failed while running (exit 1).
    #[error("{0}")]
    Runtime(String),
}

impl CliError {
    fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::from(2),
            CliError::Runtime(_) => ExitCode::from(1),
        }
    }
}

/// Loads a policy file, or the embedded example when `path` is `None`.
pub fn load_policies(path: Option<&Path>) -> Result<(PolicySet, String), CliError> {
    let (text, origin) = match path {
        Some(p) => (
            std::fs::read_to_string(p)
                .map_err(|e| CliError::Usage(format!("cannot read policy file {}: {e}", p.display())))?,
            p.display().to_string(),
        ),
        None => (EXAMPLE_POLICY.to_string(), "embedded example (infra/examples/policy.yaml)".to_string()),
    };
    PolicySet::from_yaml(&text).map(|set| (set, origin.clone())).map_err(|e| CliError::Usage(format!("{origin}: {e}")))
}

fn keygen(kid: Option<String>) -> Result<(), CliError> {
    let kid = kid.unwrap_or_else(|| jiff::Timestamp::now().strftime("riposte-%Y%m%d").to_string());
    let key = riposte_core::approval::Keys::generate(&kid).map_err(|e| CliError::Usage(e.to_string()))?;
    println!(
        "# Secret: signs approval links. Keep it in Secret Manager; give it only to the service that sends links."
    );
    println!("RIPOSTE_SIGNING_KEY={}", key.signing);
    println!(
        "# Public: add to RIPOSTE_VERIFY_KEYS (comma-separated) wherever links signed by this key must keep working."
    );
    println!("RIPOSTE_VERIFY_KEYS={}", key.public);
    Ok(())
}

/// Runs the command line.
pub fn main() -> ExitCode {
    // Lambda starts the bootstrap with no arguments: the same binary then serves.
    let lambda_bootstrap = std::env::args_os().len() <= 1 && config::Platform::detect() == config::Platform::Lambda;
    let cli =
        if lambda_bootstrap { Cli { command: Command::Serve(serve::ServeArgs::default()) } } else { Cli::parse() };
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Policy { command: PolicyCommand::Check { file } } => {
            load_policies(Some(&file)).map(|(set, origin)| {
                println!("{origin}: OK, {} policies", set.policies.len());
                println!("  limits on automatic containment across all policies: {}", set.limits.describe());
                for p in &set.policies {
                    println!(
                        "  - {}: {} automatic action(s), {} on approval; limits: {}",
                        p.name,
                        p.actions.len(),
                        p.on_approval.len(),
                        p.limits.describe()
                    );
                }
            })
        }
        Command::Replay(args) => replay::run(args),
        Command::Keygen { kid } => keygen(kid),
        Command::Incident { command } => incident_cmd::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
