//! Printing: errors on one line, colour only on a terminal, JSON output.

use std::io::{IsTerminal, Write};

/// Prints `tastypod: <error>: <cause>: ...` on one line of stderr, the
/// prefix in red on a terminal.
pub fn print_error(error: &dyn std::error::Error) {
    print_message(&tastypod::error_chain(error));
}

/// Prints `tastypod: <message>` on one line of stderr.
pub fn print_message(message: &str) {
    let prefix = if std::io::stderr().is_terminal() {
        "\x1b[1;31mtastypod:\x1b[0m"
    } else {
        "tastypod:"
    };
    let one_line = message.replace('\n', " ");
    let _ = writeln!(std::io::stderr(), "{prefix} {one_line}");
}

/// A path as JSON output gives it: its text, with any bytes that are not
/// UTF-8 replaced (JSON strings are UTF-8; the path may not be).
pub fn json_path(path: &std::path::Path) -> String {
    path.to_string_lossy().into_owned()
}

/// A key as `keys` prints it: as it is, unless it holds a control
/// character or starts with `"`; then as a JSON string.
pub fn printable_key(key: &str) -> std::borrow::Cow<'_, str> {
    let control = |c: char| c.is_control();
    if key.starts_with('"') || key.chars().any(control) {
        let mut quoted = serde_json::to_string(key).unwrap_or_default();
        // serde_json leaves DEL and the C1 controls raw: escape them too.
        if quoted.chars().any(control) {
            quoted = quoted
                .chars()
                .map(|c| {
                    if control(c) {
                        format!("\\u{:04x}", u32::from(c))
                    } else {
                        c.to_string()
                    }
                })
                .collect();
        }
        std::borrow::Cow::Owned(quoted)
    } else {
        std::borrow::Cow::Borrowed(key)
    }
}

/// Prints on stderr, one line each, what opening a store found: a torn
/// tail dropped (and cut, when `wrote`), a final newline added, a stale
/// temp file removed, and any warning.
pub fn note_recovery(log: &std::path::Path, report: &tastypod::RecoveryReport, wrote: bool) {
    let mut err = std::io::stderr().lock();
    let log = log.display();
    if let Some(t) = &report.torn_tail {
        let what = if wrote { "cut" } else { "ignored (read-only)" };
        let kept = match &t.copy {
            Some(copy) => format!("; the cut bytes are kept at {}", copy.display()),
            None if t.partial_record => "; they were one partial record, as a crash leaves".into(),
            None => String::new(),
        };
        let _ = writeln!(
            err,
            "tastypod: {log}: {what} a torn final write of {} lines ({} bytes) from line {} (byte {}): {}{kept}",
            t.lines, t.bytes, t.first.line, t.first.offset, t.first.reason
        );
    }
    if let Some(line) = report.completed_line {
        let _ = writeln!(
            err,
            "tastypod: {log}: the record on line {line} lacked only its final newline, which was added"
        );
    }
    if report.removed_temp {
        let _ = writeln!(
            err,
            "tastypod: {log}: removed the temp file of an interrupted compaction"
        );
    }
    for warning in &report.warnings {
        let _ = writeln!(err, "tastypod: warning: {warning}");
    }
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

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &serde_json::Value) -> crate::errors::CliResult<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
