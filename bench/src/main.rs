//! The `bench` binary: parses a benchmark subcommand and runs it (`rkube bench` runs the
//! same ones).

use anyhow::Result;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "bench", about = "rkube benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: bench::Command,
}

fn main() -> Result<()> {
    bench::run(Cli::parse().command)
}
