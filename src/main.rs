//! The `drio-gateway` command: parse arguments, load the configuration, run.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use drio_gateway::config::Config;

/// An OAuth-terminating reverse proxy for MCP servers.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Configuration file (TOML).
    #[arg(short, long, env = "DRIO_CONFIG", default_value = "conf/gateway.toml")]
    config: PathBuf,
    /// Check the configuration and exit: 0 if valid, 2 if not.
    #[arg(long)]
    validate: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if args.validate {
        println!(
            "{}: configuration is valid ({} apps)",
            args.config.display(),
            config.apps.len()
        );
        return ExitCode::SUCCESS;
    }
    match drio_gateway::server::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("drio-gateway failed to start: {e}");
            ExitCode::from(1)
        }
    }
}
