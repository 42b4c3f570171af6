//! The metrics runledger reports: the exact set of names and label keys (a change to either is
//! a change to every dashboard and alert built on them), and no label value that is an id.

#![allow(missing_docs)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use common::{db, hit, token, wait_until};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use runledger::{JobError, Worker, job};

#[job(queue = "metered", backoff(constant = "10ms"))]
async fn metered(key: String, how: String) -> Result<(), JobError> {
    match how.as_str() {
        "retry-once" if hit(&key) == 1 => Err(JobError::retry("once")),
        "fail" => Err(JobError::fatal("no")),
        "cancel" => Err(JobError::cancel("not needed")),
        _ => Ok(()),
    }
}

/// Every metric: name, and its label keys.
const DOCUMENTED: &[(&str, &[&str])] = &[
    ("runledger_jobs_enqueued_total", &["kind", "queue"]),
    (
        "runledger_job_attempts_total",
        &["kind", "outcome", "queue"],
    ),
    ("runledger_job_duration_seconds", &["kind", "queue"]),
    ("runledger_job_lease_lost_total", &["kind", "queue"]),
    ("runledger_jobs_rescued_total", &["queue"]),
    ("runledger_queue_depth", &["queue", "state"]),
    ("runledger_queue_oldest_available_seconds", &["queue"]),
    ("runledger_worker_busy_slots", &[]),
];

/// Label keys, labels, and a counter's total (`None` for gauges and histograms).
type Series = (BTreeSet<String>, Vec<(String, String)>, Option<u64>);

/// Everything reported so far. A snapshot drains counters and histograms, so each is merged
/// into `seen`: counters summed, the other values replaced.
fn observed(
    snapshotter: &Snapshotter,
    seen: &Mutex<BTreeMap<String, Vec<Series>>>,
) -> BTreeMap<String, Vec<Series>> {
    let mut seen = seen.lock().unwrap();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let labels: Vec<(String, String)> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        let keys = labels.iter().map(|(k, _)| k.clone()).collect();
        let series = seen.entry(key.name().to_owned()).or_default();
        let count = match value {
            DebugValue::Counter(n) => Some(n),
            _ => None,
        };
        match series.iter_mut().find(|(_, l, _)| *l == labels) {
            Some((_, _, total)) => {
                *total = total.zip(count).map(|(a, b)| a + b).or(count);
            }
            None => series.push((keys, labels, count)),
        }
    }
    seen.clone()
}

#[tokio::test]
async fn metric_names_and_labels_are_fixed() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");

    let db = db().await;
    let rl = db.client();
    for how in ["ok", "retry-once", "fail", "cancel"] {
        rl.enqueue(Metered {
            key: token(how),
            how: how.into(),
        })
        .await
        .unwrap();
    }
    let worker = Worker::builder(rl.pool().clone())
        .queues(["metered"])
        .poll_interval(Duration::from_millis(50))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let all = Mutex::new(BTreeMap::new());
    // The leader samples the queues 15 s after it takes the lead, then every 15 s.
    wait_until(
        Duration::from_secs(40),
        "attempts and a depth sample",
        || async {
            let seen = observed(&snapshotter, &all);
            // Outcomes counted at least once (the handles of the others exist at 0).
            let outcomes: BTreeSet<String> = seen
                .get("runledger_job_attempts_total")
                .into_iter()
                .flatten()
                .filter(|(_, _, count)| count.unwrap_or(0) > 0)
                .flat_map(|(_, labels, _)| {
                    labels
                        .iter()
                        .filter(|(k, _)| k == "outcome")
                        .map(|(_, v)| v.clone())
                })
                .collect();
            let done = ["completed", "retried", "failed", "cancelled"]
                .iter()
                .all(|o| outcomes.contains(*o))
                && seen.contains_key("runledger_queue_depth");
            if !done {
                eprintln!("so far: {outcomes:?} {:?}", seen.keys().collect::<Vec<_>>());
            }
            done
        },
    )
    .await;
    worker.shutdown().await.unwrap();

    let seen = observed(&snapshotter, &all);
    let documented: BTreeMap<&str, BTreeSet<String>> = DOCUMENTED
        .iter()
        .map(|(name, keys)| (*name, keys.iter().map(|k| (*k).to_owned()).collect()))
        .collect();
    for (name, series) in &seen {
        let keys = documented
            .get(name.as_str())
            .unwrap_or_else(|| panic!("metric `{name}` is not documented"));
        for (series_keys, labels, _) in series {
            assert_eq!(series_keys, keys, "`{name}` has other label keys");
            for (k, v) in labels {
                assert!(
                    v.parse::<i64>().is_err(),
                    "`{name}` label {k}={v} looks like an id"
                );
                assert!(v.len() <= 128, "`{name}` label {k} is unbounded");
            }
        }
    }
    for name in [
        "runledger_jobs_enqueued_total",
        "runledger_job_attempts_total",
        "runledger_job_duration_seconds",
        "runledger_queue_depth",
        "runledger_queue_oldest_available_seconds",
        "runledger_worker_busy_slots",
    ] {
        assert!(seen.contains_key(name), "`{name}` was not reported");
    }
    let enqueued: u64 = seen["runledger_jobs_enqueued_total"]
        .iter()
        .map(|(_, _, v)| v.unwrap_or(0))
        .sum();
    assert_eq!(enqueued, 4);
    let states: BTreeSet<String> = seen["runledger_queue_depth"]
        .iter()
        .flat_map(|(_, labels, _)| {
            labels
                .iter()
                .filter(|(k, _)| k == "state")
                .map(|(_, v)| v.clone())
        })
        .collect();
    assert_eq!(
        states,
        ["available", "retryable", "running", "scheduled", "waiting"]
            .map(String::from)
            .into()
    );
}
