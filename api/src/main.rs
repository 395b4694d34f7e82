//! Entry point of the `autoglue` binary: parse the command line, run it, and turn any error
//! into one line on stderr and a non-zero exit.

use std::process::ExitCode;

use clap::Parser;

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
