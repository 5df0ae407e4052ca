//! The command line: every subcommand and its arguments (clap).

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Inspect, check, repair and edit tastypod stores.
#[derive(Parser, Debug)]
#[command(name = "tastypod", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// The longest record the store may hold, in bytes (default 128 MiB,
    /// at most 1 GiB): give a larger one to open a store written with one.
    #[arg(long, global = true, value_name = "BYTES")]
    pub max_record_size: Option<usize>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show sizes, format version, torn tail, lock holder and tracker counts.
    #[command(
        after_help = "Example:\n  tastypod stat crawl.tracker\n  tastypod stat --json my.pod | jq .keys"
    )]
    Stat {
        /// The store directory.
        path: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON value of KEY (exit status 1 if absent).
    #[command(after_help = "Example:\n  tastypod get my.pod user-42")]
    Get {
        /// The store directory.
        path: PathBuf,
        /// The key.
        #[arg(allow_hyphen_values = true)]
        key: String,
    },
    /// Set KEY to the JSON value JSON, creating the store if PATH does not
    /// exist (bad JSON changes nothing). A number an f64 or a 64-bit integer
    /// cannot hold exactly is refused, not rounded.
    #[command(
        after_help = "Examples:\n  tastypod set my.pod user-42 '{\"name\":\"Ada\"}'\n  tastypod set my.pod balance -1"
    )]
    Set {
        /// The store directory (created if it does not exist).
        path: PathBuf,
        /// The key.
        #[arg(allow_hyphen_values = true)]
        key: String,
        /// The value, as JSON text (`-1` works as it is).
        #[arg(allow_hyphen_values = true)]
        json: String,
    },
    /// Remove KEY (exit status 1 if absent).
    #[command(after_help = "Example:\n  tastypod rm my.pod user-42")]
    Rm {
        /// The store directory.
        path: PathBuf,
        /// The key.
        #[arg(allow_hyphen_values = true)]
        key: String,
    },
    /// Print the keys in order, one per line. A key holding a control
    /// character (a newline, a terminal escape) or starting with `"` is
    /// printed as a JSON string, so one line is always one key.
    #[command(after_help = "Example:\n  tastypod keys my.pod | head")]
    Keys {
        /// The store directory.
        path: PathBuf,
        /// Print one JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Print every record in order as JSON lines {"key":..,"value":..}.
    #[command(
        after_help = "Example:\n  tastypod dump my.pod > backup.jsonl\n  tastypod dump --object my.pod | jq ."
    )]
    Dump {
        /// The store directory.
        path: PathBuf,
        /// Print one JSON object instead of JSON lines.
        #[arg(long)]
        object: bool,
    },
    /// Insert the records of a dump, in order, all or none (creates the store).
    #[command(
        after_help = "Example:\n  tastypod load copy.pod backup.jsonl\n  tastypod dump a.pod | tastypod load b.pod -"
    )]
    Load {
        /// The store directory (created if missing).
        path: PathBuf,
        /// The dump file, or - for standard input.
        file: PathBuf,
        /// Print the counts as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check every line's checksum and JSON; print problems as file:line: reason.
    #[command(after_help = "Example:\n  tastypod verify crawl.tracker && echo clean")]
    Verify {
        /// The store directory or its log file.
        path: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a clean log from every valid record, keeping the damaged original.
    #[command(after_help = "Example:\n  tastypod repair crawl.tracker")]
    Repair {
        /// The store directory.
        path: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rewrite the log without dead records; print bytes before and after.
    #[command(after_help = "Example:\n  tastypod compact crawl.tracker")]
    Compact {
        /// The store directory.
        path: PathBuf,
        /// Print the sizes as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Tracker progress: a summary with a bar, or `todo` / `reset`.
    #[command(
        args_conflicts_with_subcommands = true,
        subcommand_negates_reqs = true,
        after_help = "Examples:\n  tastypod tracker crawl.tracker\n  tastypod tracker todo crawl.tracker\n  tastypod tracker reset crawl.tracker --aborted"
    )]
    Tracker {
        #[command(subcommand)]
        action: Option<TrackerAction>,
        /// The tracker directory (or a postgres://...?tracker=NAME URL).
        #[arg(required = true)]
        path: Option<PathBuf>,
        /// The try limit to count exhausted tasks with (0: none), instead of
        /// the one stored with the tracker.
        #[arg(long)]
        max_tries: Option<u32>,
        /// Print the counts as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Migrate a tastypy POD or Tracker directory (`0.json`, `1.json.gz`, ...).
    /// Keys are read as tastypy reads them; a key that is not a string (an
    /// int, a tuple) becomes its compact JSON text: `7` -> `"7"`, `(1, 1)` ->
    /// `"[1,1]"`. Two records whose keys become the same key are refused.
    #[command(
        name = "import-tastypy",
        after_help = "Example:\n  tastypod import-tastypy old/my.tracker new.tracker"
    )]
    ImportTastypy {
        /// The tastypy directory.
        dir: PathBuf,
        /// The new store directory (must not hold a store yet).
        dest: PathBuf,
        /// Store NaN, Infinity and -Infinity (which JSON cannot hold) as
        /// null, counting them, instead of refusing the import.
        #[arg(long)]
        nan_to_null: bool,
        /// Print the counts as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Copy a tracker, in order and with every task's state and fields,
    /// between a tracker directory and PostgreSQL, in either direction. The
    /// destination must be new (or an empty tracker); it takes the source's
    /// settings. A failed copy leaves no task at the destination.
    #[command(
        after_help = "Examples:\n  tastypod copy crawl.tracker 'postgres://me@db:5432/crawl?tracker=pages'\n  tastypod copy 'postgres://me@db:5432/crawl?tracker=pages' backup.tracker"
    )]
    Copy {
        /// The tracker to copy: a directory or a postgres:// URL.
        src: PathBuf,
        /// The new tracker: a directory or a postgres:// URL.
        dest: PathBuf,
        /// Print the count as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a store as a tastypy directory (0.json, 1.json, ...), which
    /// tastypy reads as a POD or a Tracker; keys are written as strings.
    #[command(
        name = "export-tastypy",
        after_help = "Example:\n  tastypod export-tastypy crawl.tracker old/crawl.tracker"
    )]
    ExportTastypy {
        /// The store directory.
        store: PathBuf,
        /// The new tastypy directory (must not exist, or be empty).
        dir: PathBuf,
        /// Print the counts as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum TrackerAction {
    /// List the keys still to do, in order.
    #[command(after_help = "Example:\n  tastypod tracker todo crawl.tracker")]
    Todo {
        /// The tracker directory (or a postgres://...?tracker=NAME URL).
        path: PathBuf,
        /// The try limit (0: none), instead of the one stored with the tracker.
        #[arg(long)]
        max_tries: Option<u32>,
        /// Include aborted tasks.
        #[arg(long)]
        aborted: bool,
        /// Print one JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Reset tries and unabort the given tasks, so a job retries them.
    #[command(
        after_help = "Examples:\n  tastypod tracker reset crawl.tracker task-7 task-9\n  tastypod tracker reset crawl.tracker --exhausted"
    )]
    Reset {
        /// The tracker directory (or a postgres://...?tracker=NAME URL).
        path: PathBuf,
        /// The keys to reset.
        keys: Vec<String>,
        /// Reset every aborted task.
        #[arg(long)]
        aborted: bool,
        /// Reset every task that is not done and used up its tries.
        #[arg(long)]
        exhausted: bool,
        /// The try limit for --exhausted, instead of the one stored with the
        /// tracker (it is not stored).
        #[arg(long, requires = "exhausted")]
        max_tries: Option<u32>,
        /// Print the count as JSON.
        #[arg(long)]
        json: bool,
    },
}
