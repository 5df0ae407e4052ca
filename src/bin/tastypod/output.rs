//! Printing: errors on one line, colour only on a terminal, JSON output.

use std::io::{IsTerminal, Write};

/// Prints `tastypod: <error>: <cause>: ...` on one line of stderr, the
/// prefix in red on a terminal.
pub fn print_error(error: &dyn std::error::Error) {
    let prefix = if std::io::stderr().is_terminal() {
        "\x1b[1;31mtastypod:\x1b[0m"
    } else {
        "tastypod:"
    };
    let _ = writeln!(
        std::io::stderr(),
        "{prefix} {}",
        tastypod::error_chain(error)
    );
}

/// Whether stdout is a terminal (and so may get colour).
pub fn colour() -> bool {
    std::io::stdout().is_terminal()
}

/// `text` in bold green on a terminal, plain otherwise.
pub fn good(text: &str) -> String {
    if colour() {
        format!("\x1b[32m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// `text` in bold red on a terminal, plain otherwise.
pub fn bad(text: &str) -> String {
    if colour() {
        format!("\x1b[31m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// A text progress bar of `width` cells for `fraction` in [0, 1].
pub fn bar(fraction: f64, width: usize) -> String {
    let filled = ((fraction.clamp(0.0, 1.0) * width as f64).round() as usize).min(width);
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
}
