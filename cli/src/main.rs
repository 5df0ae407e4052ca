//! `tastypod`: inspect, check, repair and edit tastypod stores from the shell.

#![deny(unsafe_code, missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// `println!` that returns an error (a closed pipe) instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)?
    }};
}

mod args;
mod bounded;
mod commands;
#[cfg(feature = "postgres")]
mod copy;
mod errors;
mod export;
mod import;
mod open;
mod output;
#[cfg(feature = "postgres")]
mod pg_cmd;
mod staging;
mod tastypy;
mod tracker_cmd;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return argument_error(&e),
    };
    let stores = open::Stores::new(cli.max_record_size);
    match commands::run(cli.command, &stores) {
        Ok(code) => code,
        // A reader that stopped early (`tastypod keys big.pod | head`) is not an error.
        Err(e) if is_broken_pipe(&*e) => ExitCode::SUCCESS,
        Err(e) => {
            output::print_error(&*e);
            ExitCode::from(2)
        }
    }
}

/// Prints `--help` and `--version` as clap does; any other argument error
/// as one line `tastypod: ...` with exit status 2.
fn argument_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    // clap's first paragraph (`error: ...` and any names under it), joined.
    let text = e.render().to_string();
    let paragraph: Vec<&str> = text
        .lines()
        .map(str::trim)
        .skip_while(|l| l.is_empty())
        .take_while(|l| !l.is_empty())
        .collect();
    let joined = paragraph.join(" ");
    let message = match e.kind() {
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => "a command is needed",
        _ => joined.strip_prefix("error: ").unwrap_or(&joined),
    };
    output::print_message(&format!("{message} (see tastypod --help)"));
    ExitCode::from(2)
}

fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}
