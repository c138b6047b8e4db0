//! The `drio-gateway` command: parse arguments, load the configuration, run.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use drio_gateway::config::Config;

/// The process's allocator (see Cargo.toml: the proxy path's allocations are
/// the largest single cost the gateway adds to Pingora's).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Take the listening sockets over from a running instance (Pingora's
    /// graceful upgrade): start this, then send the old process SIGQUIT. It
    /// hands its sockets over `server.upgrade_sock` and finishes its in-flight
    /// requests. Needs `server.upgrade_sock` and the redis store (the embedded
    /// one is held by the old process).
    #[arg(long)]
    upgrade: bool,
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
    match drio_gateway::server::run(config, args.upgrade) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("drio-gateway failed to start: {e}");
            ExitCode::from(1)
        }
    }
}
