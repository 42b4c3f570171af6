//! The fault suite of `RELIABILITY.md`: every scenario against a real PostgreSQL, one line each.
//!
//! A plain `main` (the target has `harness = false`): it runs the scenarios one after another on
//! one multi-thread runtime, prints a row per scenario as it ends, lists what failed below the
//! table and exits non-zero if anything did. With `RUNLEDGER_RELIABILITY_CHILD` set, the binary
//! is a child worker process instead (see `harness::child_main`).
//!
//! Arguments select scenarios the way a test harness's do: a name selects those that contain it
//! (`--exact`: those equal to it), `--skip NAME` leaves some out, `--list` lists them.
//! `RUNLEDGER_RELIABILITY_DEBUG=1` lets child workers write to stderr; `RUST_LOG` turns on logs.

#![allow(unreachable_pub)]

mod bad_input;
#[path = "../common/mod.rs"]
mod common;
mod crashes;
mod durable;
mod hardening;
mod harness;
mod races;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use harness::{Row, Scenario};

/// Longest a scenario may run before it counts as failed.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(180);

/// Panic messages with their locations, as the panic hook saw them.
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn main() {
    if let Ok(role) = std::env::var(harness::CHILD_ENV) {
        std::process::exit(harness::child_main(&role));
    }
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .try_init();
    }
    // Panics are expected (handlers that panic on purpose) or are reported below the table: keep
    // them off the output, with their locations.
    std::panic::set_hook(Box::new(|info| {
        let message = panic_text(info.payload());
        let at = info
            .location()
            .map(|l| format!(" (at {}:{})", l.file(), l.line()))
            .unwrap_or_default();
        PANICS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("{message}{at}"));
    }));
    let args = Args::parse();
    let scenarios: Vec<Scenario> = [
        crashes::SCENARIOS,
        durable::SCENARIOS,
        races::SCENARIOS,
        bad_input::SCENARIOS,
        hardening::SCENARIOS,
    ]
    .concat()
    .into_iter()
    .filter(|(name, _)| args.selects(name))
    .collect();
    if args.list {
        for (name, _) in &scenarios {
            println!("{name}: test");
        }
        return;
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let width = scenarios
        .iter()
        .map(|(name, _)| name.chars().count())
        .max()
        .unwrap_or(0)
        .max("scenario".len());
    println!("{}", harness::format_header(width));
    let mut failures: Vec<(&'static str, String)> = Vec::new();
    for (name, run) in scenarios.iter().copied() {
        let task = runtime.spawn(run());
        let outcome = runtime.block_on(async {
            let abort = task.abort_handle();
            match tokio::time::timeout(SCENARIO_TIMEOUT, task).await {
                Ok(joined) => Ok(joined),
                Err(_) => {
                    abort.abort();
                    Err(())
                }
            }
        });
        let (line, failure) = match outcome {
            Ok(Ok(row)) => judge(name, row, width),
            Ok(Err(error)) => {
                let message = if error.is_panic() {
                    let text = panic_text(error.into_panic().as_ref());
                    located(&text)
                } else {
                    format!("the scenario's task ended: {error}")
                };
                (harness::format_failed(name, width), Some(message))
            }
            Err(()) => (
                harness::format_failed(name, width),
                Some(format!("did not finish within {SCENARIO_TIMEOUT:?}")),
            ),
        };
        match failure {
            Some(message) => {
                println!("{line}  FAIL");
                failures.push((name, message));
            }
            None => println!("{line}"),
        }
    }
    // Workers and pools of failed scenarios may still hold connections; do not wait for them.
    runtime.shutdown_timeout(Duration::from_secs(5));
    println!(
        "{} scenarios, {} failed, in {:.0} s",
        scenarios.len(),
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    for (name, message) in &failures {
        println!("FAIL {name}: {message}");
    }
    if !failures.is_empty() {
        std::process::exit(1);
    }
}

/// The command line, read the way a test harness reads it: names select scenarios (by
/// substring, or whole with `--exact`), `--skip NAME` leaves some out, `--list` lists them,
/// `--ignored` selects none (no scenario is ignored); other flags are accepted and ignored.
#[derive(Debug, Default)]
struct Args {
    filters: Vec<String>,
    skip: Vec<String>,
    exact: bool,
    list: bool,
    ignored: bool,
}

impl Args {
    fn parse() -> Self {
        let mut args = Args::default();
        let mut words = std::env::args().skip(1);
        while let Some(word) = words.next() {
            match word.as_str() {
                "--skip" => args.skip.extend(words.next()),
                "--exact" => args.exact = true,
                "--list" => args.list = true,
                "--ignored" => args.ignored = true,
                // Flags of a test harness that take a value as the next word.
                "--format" | "--color" | "--test-threads" | "--logfile" | "--shuffle-seed"
                | "-Z" => {
                    words.next();
                }
                flag if flag.starts_with('-') => {}
                _ => args.filters.push(word),
            }
        }
        args
    }

    fn selects(&self, name: &str) -> bool {
        let matches = |f: &String| {
            if self.exact {
                name == f
            } else {
                name.contains(f.as_str())
            }
        };
        !self.ignored
            && (self.filters.is_empty() || self.filters.iter().any(matches))
            && !self.skip.iter().any(|s| name.contains(s.as_str()))
    }
}

/// The row's line and, if it breaks a rule, what is wrong.
fn judge(name: &'static str, row: Row, width: usize) -> (String, Option<String>) {
    let mut problems = row.violations();
    if row.scenario != name {
        problems.push(format!("the row is named `{}`", row.scenario));
    }
    let line = harness::format_row(&row, width);
    if problems.is_empty() {
        (line, None)
    } else {
        (line, Some(problems.join("; ")))
    }
}

/// `message` with the location the panic hook recorded for it, if any.
fn located(message: &str) -> String {
    let panics = PANICS.lock().unwrap_or_else(|e| e.into_inner());
    panics
        .iter()
        .rev()
        .find(|p| p.starts_with(message))
        .cloned()
        .unwrap_or_else(|| message.to_owned())
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
