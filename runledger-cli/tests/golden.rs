//! The `runledger` command against seeded data on the embedded PostgreSQL, its output compared
//! with the files in `tests/golden/` (times written as `<time>`, runs of spaces as two).
//! Durations are written as `<n> ms`. `RUNLEDGER_GOLDEN=overwrite cargo test -p runledger-cli` rewrites them.

#![allow(missing_docs)]

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use runledger::testing::TestDatabase;
use runledger::{JobError, Schedule, Worker, job, workflow};

#[job(queue = "mail", max_attempts = 1)]
async fn send_mail(to: String) -> Result<(), JobError> {
    if to.contains("bounce") {
        return Err(JobError::fatal(format!("mailbox {to} does not exist")));
    }
    Ok(())
}

#[job(queue = "mail", sensitive)]
async fn store_card(number: String) -> Result<(), JobError> {
    let _ = number;
    Ok(())
}

#[job(queue = "mail")]
async fn fetch(n: i64) -> Result<i64, JobError> {
    Ok(n)
}

#[job(queue = "mail", max_attempts = 1)]
async fn transform(n: i64) -> Result<i64, JobError> {
    if n < 0 {
        return Err(JobError::fatal("negative input"));
    }
    Ok(n + 1)
}

#[job(queue = "mail")]
async fn publish(a: i64, b: i64) -> Result<i64, JobError> {
    Ok(a + b)
}

#[workflow(name = "report")]
fn report(n: i64) {
    let a = fetch(n);
    let b = transform(a);
    let c = fetch(n);
    publish(b, c)
}

#[job(queue = "idle")]
async fn later(n: u32) -> Result<(), JobError> {
    let _ = n;
    Ok(())
}

async fn seeded() -> TestDatabase {
    let db = TestDatabase::new().await.expect("a test database");
    let rl = db.client();
    for to in [
        "bounce1@example.com",
        "ok@example.com",
        "bounce2@example.com",
    ] {
        rl.enqueue(SendMail { to: to.into() }).await.unwrap();
    }
    rl.enqueue(StoreCard {
        number: "4111-secret".into(),
    })
    .await
    .unwrap();
    rl.start(Report { n: -5 }).await.unwrap();
    rl.enqueue(Later { n: 1 }).await.unwrap();
    rl.add_schedule(Schedule::new("nightly", "0 3 * * *", Later { n: 2 }))
        .await
        .unwrap();
    runledger::testing::drain_with(
        Worker::builder(rl.pool().clone())
            .id("golden-worker")
            .queues(["mail"])
            .poll_interval(Duration::from_millis(50)),
    )
    .await
    .unwrap();
    db
}

fn cli(db: &TestDatabase, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_runledger"))
        .args(args)
        .env("DATABASE_URL", db.url())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the runledger binary runs")
}

/// `text` with times as `<time>` and runs of spaces as two spaces.
fn normalized(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let shape = "dddd-dd-dd dd:dd:dd";
    while i < chars.len() {
        let fits = i + shape.len() <= chars.len()
            && shape.chars().zip(&chars[i..]).all(|(s, c)| match s {
                'd' => c.is_ascii_digit(),
                ' ' => *c == ' ' || *c == 'T',
                other => other == *c,
            });
        if fits {
            out.push_str("<time>");
            i += shape.len();
            // Fractions and offsets of RFC 3339 times.
            while i < chars.len() && (chars[i].is_ascii_digit() || ".:+Z".contains(chars[i])) {
                i += 1;
            }
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    // Durations: `12 ms`, `3 s`.
    let words: Vec<&str> = out.split(' ').collect();
    let mut timed = Vec::with_capacity(words.len());
    for (i, w) in words.iter().enumerate() {
        let unit = words.get(i + 1).and_then(|u| u.split_whitespace().next());
        if !w.is_empty()
            && w.bytes().all(|b| b.is_ascii_digit())
            && matches!(unit, Some("ms" | "s"))
        {
            timed.push("<n>");
        } else {
            timed.push(w);
        }
    }
    let out = timed.join(" ");
    let mut squeezed = String::with_capacity(out.len());
    for line in out.lines() {
        // Trees keep their spaces; tables have them squeezed, since widths follow the values.
        if line.contains(['│', '├', '└']) {
            squeezed.push_str(line);
            squeezed.push('\n');
            continue;
        }
        let mut spaces = 0;
        for c in line.chars() {
            if c == ' ' {
                spaces += 1;
                continue;
            }
            if spaces > 0 {
                squeezed.push_str(if spaces > 1 { "  " } else { " " });
                spaces = 0;
            }
            squeezed.push(c);
        }
        squeezed.push('\n');
    }
    squeezed
}

fn golden(name: &str, output: &Output) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let actual = normalized(&format!(
        "exit: {}\n{stdout}{}",
        output.status.code().unwrap_or(-1),
        if stderr.is_empty() {
            String::new()
        } else {
            format!("stderr: {stderr}")
        }
    ));
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.txt"));
    if std::env::var("RUNLEDGER_GOLDEN").as_deref() == Ok("overwrite") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} is missing; RUNLEDGER_GOLDEN=overwrite writes it",
            path.display()
        )
    });
    assert_eq!(
        actual,
        expected,
        "{name}: the output differs from {}",
        path.display()
    );
}

#[tokio::test]
async fn reads_print_tables_trees_and_json() {
    let db = seeded().await;
    golden("jobs-ls", &cli(&db, &["jobs", "ls"]));
    golden(
        "jobs-ls-failed",
        &cli(&db, &["jobs", "ls", "--state", "failed", "--limit", "2"]),
    );
    golden("jobs-show-failed", &cli(&db, &["jobs", "show", "1"]));
    golden("jobs-show-sensitive", &cli(&db, &["jobs", "show", "4"]));
    golden("runs-ls", &cli(&db, &["runs", "ls"]));
    golden("runs-show", &cli(&db, &["runs", "show", "1"]));
    golden("schedules-ls", &cli(&db, &["schedules", "ls"]));
    golden("status", &cli(&db, &["status"]));
    golden("workers", &cli(&db, &["workers"]));

    // Every read parses back as JSON.
    for args in [
        &["jobs", "ls", "--json"][..],
        &["jobs", "show", "1", "--json"],
        &["runs", "ls", "--json"],
        &["runs", "show", "1", "--json"],
        &["schedules", "ls", "--json"],
        &["status", "--json"],
        &["workers", "--json"],
        &["events", "ls", "--json"],
        &["doctor", "--json"],
    ] {
        let out = cli(&db, args);
        let value: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?} prints JSON: {e}"));
        assert!(!value.is_null(), "{args:?}");
    }
    let page: serde_json::Value =
        serde_json::from_slice(&cli(&db, &["jobs", "ls", "--state", "failed", "--json"]).stdout)
            .unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert!(items.iter().all(|j| j["state"] == "failed"));
    let secret = cli(&db, &["jobs", "show", "4", "--json"]);
    assert!(!String::from_utf8_lossy(&secret.stdout).contains("4111-secret"));

    // doctor exits 1 on a problem, 0 otherwise; here nothing is stuck for long.
    let doctor = cli(&db, &["doctor"]);
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(text.contains("ok       schema"), "{text}");
    assert_eq!(doctor.status.code(), Some(0), "{text}");
}

#[tokio::test]
async fn writes_ask_for_confirmation_and_report_what_changed() {
    let db = seeded().await;
    golden("retry-needs-which", &cli(&db, &["jobs", "retry"]));
    let retry_failed_mail = |extra: &[&str]| {
        let mut args = vec!["jobs", "retry", "--state", "failed", "--kind", "send_mail"];
        args.extend_from_slice(extra);
        cli(&db, &args)
    };
    golden("retry-needs-yes", &retry_failed_mail(&[]));
    golden("retry-dry-run", &retry_failed_mail(&["--dry-run"]));
    golden("retry-yes", &retry_failed_mail(&["--yes"]));
    golden("retry-step-job", &cli(&db, &["jobs", "retry", "8"]));
    golden("cancel-ids", &cli(&db, &["jobs", "cancel", "1", "8"]));
    golden("runs-retry", &cli(&db, &["runs", "retry", "1"]));
    golden("runs-retry-again", &cli(&db, &["runs", "retry", "1"]));
    golden(
        "schedules-pause",
        &cli(&db, &["schedules", "pause", "nightly"]),
    );
    golden(
        "schedules-trigger",
        &cli(&db, &["schedules", "trigger", "nightly"]),
    );
    golden(
        "schedules-unknown",
        &cli(&db, &["schedules", "trigger", "nope"]),
    );
    golden(
        "events-emit",
        &cli(
            &db,
            &[
                "events",
                "emit",
                "order.paid",
                "42",
                "--payload",
                "{\"cents\":500}",
            ],
        ),
    );
    golden(
        "events-emit-again",
        &cli(
            &db,
            &["events", "emit", "order.paid", "42", "--payload", "{}"],
        ),
    );
    golden("events-ls", &cli(&db, &["events", "ls"]));
    golden("bad-state", &cli(&db, &["jobs", "ls", "--state", "broken"]));
    let no_db = std::process::Command::new(env!("CARGO_BIN_EXE_runledger"))
        .args(["status"])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    golden("no-database", &no_db);
}
