//! The CLI's result type and its own error messages.

use std::error::Error as StdError;

/// What every command returns: any error, printed as one line.
pub type CliResult<T> = Result<T, Box<dyn StdError>>;

/// An error message of the CLI's own.
#[derive(Debug)]
pub struct Message(pub String);

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Message {}

/// Fails with `msg`.
pub fn fail<T>(msg: impl Into<String>) -> CliResult<T> {
    Err(Box::new(Message(msg.into())))
}
