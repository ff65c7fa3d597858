//! Progress bars on stderr (indicatif): hidden when stderr is not a terminal, so pipes and
//! tests see only the summary.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use riffle_ingest::bulk_load::{LoadProgress, LoadSummary, ProgressUpdate};
use riffle_ingest::pipeline::IngestSummary;
use riffle_ingest::process::IngestProgress;

fn bar(len: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A count bar: `[00:00:02] [=====>   ] 40000/100000 users (20000/s, eta 3s)`.
pub fn counter(len: u64, unit: &str) -> ProgressBar {
    bar(
        len,
        &format!(
            "[{{elapsed_precise}}] [{{bar:40}}] {{pos}}/{{len}} {unit} ({{per_sec}}, eta {{eta}})"
        ),
    )
}

/// A spinner with a message: `[00:00:02] events: 40000 read, ...`.
pub fn spinner() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("[{elapsed_precise}] {spinner} {msg}") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Draws a `riffle ingest` as a spinner with the run's counts after its last flush, cleared
/// once the pipeline returned.
pub struct IngestBar(ProgressBar);

impl IngestBar {
    pub fn new() -> Self {
        Self(spinner())
    }
}

impl IngestProgress for IngestBar {
    fn flushed(&mut self, s: &IngestSummary) {
        self.0.set_message(format!(
            "events: {} read, {} applied, {} already applied, {} dead-lettered; {} rows written",
            s.events_read,
            s.applied,
            s.already_applied,
            s.dead_lettered_total(),
            s.rows_written
        ));
    }

    fn finished(&mut self) {
        self.0.finish_and_clear();
    }
}

/// Draws a `riffle load` as bytes of the file read, with row counts.
pub struct LoadBar(ProgressBar);

impl LoadBar {
    pub fn new() -> Self {
        Self(bar(
            0,
            "[{elapsed_precise}] [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta}) {msg}",
        ))
    }
}

impl LoadProgress for LoadBar {
    fn start(&self, total_bytes: u64) {
        self.0.set_length(total_bytes);
    }

    fn update(&self, u: &ProgressUpdate) {
        self.0.set_position(u.bytes_read);
        self.0.set_message(format!(
            "rows: {} read, {} written, {} skipped",
            u.rows_read, u.rows_written, u.rows_skipped
        ));
    }

    fn finish(&self, _summary: &LoadSummary) {
        self.0.finish_and_clear();
    }
}

/// Draws a `riffle training-set` as one bar per phase (bytes of history read, spine rows
/// answered), each replaced by the next.
pub struct TrainingSetBar(std::sync::Mutex<ProgressBar>);

impl TrainingSetBar {
    pub fn new() -> Self {
        Self(std::sync::Mutex::new(spinner()))
    }

    pub fn finish(&self) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .finish_and_clear();
    }
}

impl riffle_offline::Progress for TrainingSetBar {
    fn phase(&self, name: &str, total: u64, unit: &'static str) {
        let mut current = self.0.lock().unwrap_or_else(|p| p.into_inner());
        current.finish_and_clear();
        *current = if total > 0 {
            bar(
                total,
                &format!("[{{elapsed_precise}}] {{msg}} [{{bar:40}}] {{pos}}/{{len}} {unit} ({{per_sec}}, eta {{eta}})"),
            )
        } else {
            let spinner = spinner();
            if unit == "bytes" {
                if let Ok(style) = ProgressStyle::with_template(
                    "[{elapsed_precise}] {spinner} {msg}: {bytes} ({bytes_per_sec})",
                ) {
                    spinner.set_style(style);
                }
            }
            spinner
        };
        current.set_message(name.to_string());
    }

    fn advance(&self, n: u64) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).inc(n);
    }
}
