//! A progress display for tracker loops that resumes where the job stopped:
//! a bar with rate and ETA on a terminal, a plain summary line otherwise.

use crate::tracker::Tracker;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often the plain (non-terminal) display prints a line.
const LINE_EVERY: Duration = Duration::from_secs(2);

/// Shows a tracker's progress; create it before the loop and call
/// [`update`](Progress::update) as tasks finish.
///
/// On a terminal (stderr) it draws a bar of done/total, with rate and ETA,
/// that starts at the tracker's current counts, so a resumed job shows its
/// real position. Elsewhere it prints a plain summary line every 2 seconds.
///
/// # Examples
///
/// ```
/// use tastypod::{Aborted, Progress, Tracker};
/// # let dir = tempfile::tempdir()?;
/// let mut tracker = Tracker::open(dir.path().join("t"))?;
/// tracker.add_many(["a", "b"])?;
/// let mut progress = Progress::new(&tracker);
/// let mut tasks = tracker.try_keys(Aborted::Skip);
/// while let Some(key) = tasks.next() {
///     tasks.mark_done(&key?)?;
///     progress.update(&tasks);
/// }
/// progress.finish(&tasks);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last_line: Instant,
}

impl Progress {
    /// A display for `tracker`, a bar if stderr is a terminal.
    pub fn new(tracker: &Tracker) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(tracker.len() as u64);
            let style = indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} done ({percent}%) {per_sec} ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_position(tracker.num_done() as u64);
            bar.reset_eta();
            bar
        });
        Progress {
            bar,
            last_line: Instant::now(),
        }
    }

    /// Shows the tracker's current counts.
    pub fn update(&mut self, tracker: &Tracker) {
        match &self.bar {
            Some(bar) => {
                bar.set_length(tracker.len() as u64);
                bar.set_position(tracker.num_done() as u64);
                bar.set_message(format!(
                    "tried {} aborted {}",
                    tracker.num_tried(),
                    tracker.num_aborted()
                ));
            }
            None if self.last_line.elapsed() >= LINE_EVERY => {
                self.last_line = Instant::now();
                let _ = writeln!(std::io::stderr(), "{}", tracker.summary());
            }
            None => {}
        }
    }

    /// Shows the final counts and ends the display.
    pub fn finish(&mut self, tracker: &Tracker) {
        match self.bar.take() {
            Some(bar) => {
                bar.set_position(tracker.num_done() as u64);
                bar.finish();
            }
            None => {
                let _ = writeln!(std::io::stderr(), "{}", tracker.summary());
            }
        }
    }
}
