//! A progress display for tracker loops that resumes where the job stopped:
//! a bar on a terminal, a plain line every few seconds otherwise; for a
//! [`SharedTracker`], drawn by a thread of its own ([`Progress::watch`]).

use crate::shared::SharedTracker;
use crate::tracker::{TaskCounts, Tracker};
use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the plain (non-terminal) display prints a line.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// How far back the rate looks: the recent pace, not the whole run's.
const RATE_WINDOW: Duration = Duration::from_secs(30);

/// How often a watching thread looks at the counts.
const WATCH_EVERY: Duration = Duration::from_millis(250);

/// Shows a tracker's progress: done of total, the rate, the time left
/// (counting only the tasks still to do, not those given up), and what
/// was aborted, exhausted and claimed.
///
/// On a terminal (stderr) it draws a bar that starts at the tracker's
/// current counts, so a resumed job shows its real position. Elsewhere it
/// prints one line every 5 seconds, such as
/// `1217/3064 done (39.7 %), 812/s, ETA 2m 15s; 3 aborted, 1 exhausted, 4 claimed`.
/// [`finish`](Progress::finish) shows the final counts as they are (a job
/// stopped early is not drawn as complete).
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
///
/// For workers sharing a [`SharedTracker`], [`Progress::watch`] draws from
/// a thread of its own.
#[derive(Debug)]
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last_line: Instant,
    /// Recent (time, done) samples, oldest first, for the rate.
    samples: VecDeque<(Instant, usize)>,
}

impl Progress {
    /// A display for `tracker`, a bar if stderr is a terminal.
    pub fn new(tracker: &Tracker) -> Self {
        Progress::from_counts(tracker.counts())
    }

    /// A display starting at `counts` (of any tracker backend), a bar if
    /// stderr is a terminal.
    pub fn from_counts(counts: TaskCounts) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(reachable(&counts) as u64);
            let style = indicatif::ProgressStyle::with_template("{bar:40} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_position(counts.done as u64);
            bar
        });
        let mut progress = Progress {
            bar,
            // The first plain line comes after one interval.
            last_line: Instant::now(),
            samples: VecDeque::new(),
        };
        progress.sample(counts.done);
        progress
    }

    /// Starts a thread that shows `tracker`'s progress (looking at its
    /// counts 4 times a second) until the returned [`Watch`] is finished
    /// (or dropped), which shows the final counts.
    ///
    /// # Examples
    ///
    /// ```
    /// use tastypod::{Progress, SharedTracker};
    /// # let dir = tempfile::tempdir()?;
    /// let tracker = SharedTracker::open(dir.path().join("t"))?;
    /// tracker.add_many_if_absent(["a", "b"])?;
    /// let progress = Progress::watch(&tracker);
    /// tracker.mark_done("a")?;
    /// progress.finish(); // `1/2 done (50.0 %), ...` on stderr
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn watch(tracker: &SharedTracker) -> Watch {
        let progress = Progress::from_counts(tracker.counts());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (tracker, stop) = (tracker.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut progress = progress;
                while !stop.load(Ordering::Relaxed) {
                    std::thread::park_timeout(WATCH_EVERY);
                    progress.update_counts(tracker.counts());
                }
                progress.finish_counts(tracker.counts());
            })
        };
        Watch {
            stop,
            thread: Some(thread),
        }
    }

    /// Shows the tracker's current counts.
    pub fn update(&mut self, tracker: &Tracker) {
        self.update_counts(tracker.counts());
    }

    /// Shows `counts` (of any tracker backend).
    pub fn update_counts(&mut self, counts: TaskCounts) {
        self.sample(counts.done);
        let line = self.line(&counts);
        match &self.bar {
            Some(bar) => {
                bar.set_length(reachable(&counts) as u64);
                bar.set_position(counts.done as u64);
                bar.set_message(line);
            }
            None if self.last_line.elapsed() >= LINE_EVERY => {
                self.last_line = Instant::now();
                let _ = writeln!(std::io::stderr(), "{line}");
            }
            None => {}
        }
    }

    /// Shows the final counts and ends the display.
    pub fn finish(&mut self, tracker: &Tracker) {
        self.finish_counts(tracker.counts());
    }

    /// Shows `counts` as the final ones and ends the display. The bar stays
    /// where the counts put it: a job stopped early is not drawn as done.
    pub fn finish_counts(&mut self, counts: TaskCounts) {
        self.sample(counts.done);
        let line = format!(
            "{}; {} tried ({} tries)",
            self.line(&counts),
            counts.tried,
            counts.tries
        );
        match self.bar.take() {
            Some(bar) => {
                bar.set_length(reachable(&counts) as u64);
                bar.set_position(counts.done as u64);
                bar.abandon_with_message(line);
            }
            None => {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
        }
    }

    fn sample(&mut self, done: usize) {
        let now = Instant::now();
        self.samples.push_back((now, done));
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|&(t, _)| now.duration_since(t) >= RATE_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// Tasks done a second, over the recent window (`None` before any time passed).
    fn rate(&self) -> Option<f64> {
        let (&(t0, d0), &(t1, d1)) = (self.samples.front()?, self.samples.back()?);
        let secs = t1.duration_since(t0).as_secs_f64();
        (secs >= 0.2).then(|| d1.saturating_sub(d0) as f64 / secs)
    }

    /// The line shown: done of total, rate, time left, given up and claimed.
    fn line(&self, counts: &TaskCounts) -> String {
        let rate = self.rate();
        let eta = match rate {
            _ if counts.todo == 0 => "0s".to_string(),
            Some(r) if r > 0.0 => duration_text(counts.todo as f64 / r),
            _ => "?".to_string(),
        };
        format!(
            "{}/{} done ({:.1} %), {}, ETA {eta}; {} aborted, {} exhausted, {} claimed",
            counts.done,
            counts.total,
            100.0 * crate::tracker::counts::fraction(counts.done, counts.total),
            rate.map_or_else(|| "?/s".to_string(), rate_text),
            counts.aborted,
            counts.exhausted,
            counts.claimed,
        )
    }
}

/// The tasks that can still be done or are: all but those given up.
fn reachable(counts: &TaskCounts) -> usize {
    counts.done + counts.todo
}

/// A rate with sensible precision: `812/s`, `12.5/s`, `0.42/s`.
fn rate_text(rate: f64) -> String {
    if rate >= 100.0 {
        format!("{rate:.0}/s")
    } else if rate >= 10.0 {
        format!("{rate:.1}/s")
    } else {
        format!("{rate:.2}/s")
    }
}

/// `2h 05m`, `3m 07s`, `42s`.
fn duration_text(secs: f64) -> String {
    if !secs.is_finite() || secs > 1e9 {
        return "?".to_string();
    }
    let secs = secs.ceil() as u64;
    match secs {
        s if s >= 3600 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// A thread showing a [`SharedTracker`]'s progress; see [`Progress::watch`].
/// Dropping it stops the thread as [`finish`](Watch::finish) does.
#[derive(Debug)]
pub struct Watch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watch {
    /// Stops the thread after it shows the final counts.
    pub fn finish(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            // A panic in the display thread is not the caller's failure.
            let _ = thread.join();
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_durations_read_well() {
        assert_eq!(rate_text(812.3456), "812/s");
        assert_eq!(rate_text(12.345), "12.3/s");
        assert_eq!(rate_text(0.4234), "0.42/s");
        assert_eq!(duration_text(42.2), "43s");
        assert_eq!(duration_text(187.0), "3m 07s");
        assert_eq!(duration_text(7500.0), "2h 05m");
        assert_eq!(duration_text(f64::INFINITY), "?");
    }

    #[test]
    fn the_line_counts_only_tasks_to_do_in_the_eta() {
        let mut progress = Progress {
            bar: None,
            last_line: Instant::now(),
            samples: VecDeque::new(),
        };
        let start = Instant::now();
        progress.samples.push_back((start, 100));
        progress
            .samples
            .push_back((start + Duration::from_secs(10), 200));
        let counts = TaskCounts {
            total: 1300,
            done: 200,
            aborted: 50,
            exhausted: 50,
            todo: 1000,
            claimed: 4,
            ..TaskCounts::default()
        };
        // 10 a second, 1,000 to do (the 100 given up are not waited for).
        assert_eq!(
            progress.line(&counts),
            "200/1300 done (15.4 %), 10.0/s, ETA 1m 40s; 50 aborted, 50 exhausted, 4 claimed"
        );
        assert_eq!(reachable(&counts), 1200);
    }
}
