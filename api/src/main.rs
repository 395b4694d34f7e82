//! Entry point of the `autoglue` binary: parse the command line, run it, and turn any error
//! into one line on stderr and a non-zero exit.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc rather than the system allocator: serving a GraphQL page allocates tens of
/// thousands of small, short-lived objects per request, where glibc malloc costs about
/// three times as many instructions (see `bench/README.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = autoglue::cli::Cli::parse();
    match autoglue::cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` joins the context chain with ": "; newlines inside causes would break
            // the one-line promise, so fold them.
            let line = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {line}");
            ExitCode::FAILURE
        }
    }
}
