//! What the commands print: JSON, or aligned tables and trees for people.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use runledger::admin::{JobDetail, RunDetail};
use serde::Serialize;

/// Where results go: standard output, as JSON or for people.
pub(crate) struct Out {
    json: bool,
}

impl Out {
    pub(crate) fn new(json: bool) -> Self {
        Out { json }
    }

    /// `value` as JSON, or the text `human` makes.
    pub(crate) fn print<T: Serialize>(&self, value: &T, human: impl FnOnce() -> String) {
        if self.json {
            match serde_json::to_string_pretty(value) {
                Ok(text) => println!("{text}"),
                Err(e) => eprintln!("error: the result does not serialize: {e}"),
            }
        } else {
            print!("{}", human());
        }
    }

    /// A message (`{"message": ...}` in JSON).
    pub(crate) fn line(&self, message: &str) {
        self.print(&serde_json::json!({ "message": message }), || {
            format!("{message}\n")
        });
    }
}

/// A table with aligned columns.
pub(crate) struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new<const N: usize>(header: [&str; N]) -> Self {
        Table {
            rows: vec![header.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    pub(crate) fn row<const N: usize>(&mut self, cells: [String; N]) {
        self.rows
            .push(cells.into_iter().map(|c| one_line(&c)).collect());
    }

    pub(crate) fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(widths[c] - cell.chars().count() + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r', '\t'], " ")
}

/// A page's text, with how to ask for the next page when there is one.
pub(crate) fn with_more(mut text: String, next: Option<i64>) -> String {
    if let Some(next) = next {
        text.push_str(&format!("more: --after {next}\n"));
    }
    text
}

/// A time as people read it (UTC, to the second).
pub(crate) fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// `s` on one line, cut at `max` characters.
pub(crate) fn cut(s: &str, max: usize) -> String {
    let s = one_line(s);
    if s.chars().count() <= max {
        s
    } else {
        format!("{}…", s.chars().take(max - 1).collect::<String>())
    }
}

/// One job, for people.
pub(crate) fn job_detail(d: &JobDetail) -> String {
    let j = &d.summary;
    let mut out = format!("job {}  {}  queue {}  {}\n", j.id, j.kind, j.queue, j.state);
    out.push_str(&format!(
        "attempt {}/{}  created {}",
        j.attempt,
        j.max_attempts,
        time(j.created_at)
    ));
    if let Some(f) = j.finished_at {
        out.push_str(&format!("  finished {}", time(f)));
    }
    out.push('\n');
    if let Some(run) = j.run_id {
        out.push_str(&format!(
            "step `{}` of run {run}\n",
            j.step.as_deref().unwrap_or("")
        ));
    }
    if let Some(parent) = j.parent_id {
        out.push_str(&format!("spawned by job {parent}\n"));
    }
    for s in &d.stuck {
        out.push_str(&format!("stuck: {s}\n"));
    }
    out.push_str(&format!("args: {}\n", d.args));
    if let Some(o) = &d.output {
        out.push_str(&format!("output: {o}\n"));
    }
    if let Some(p) = &d.progress {
        out.push_str(&format!("progress: {p}\n"));
    }
    if !d.attempts.is_empty() {
        out.push_str("\nattempts:\n");
        let mut t = Table::new(["#", "OUTCOME", "KIND", "WORKER", "STARTED", "TOOK", "ERROR"]);
        for a in &d.attempts {
            t.row([
                a.attempt.to_string(),
                a.outcome.clone(),
                a.error_kind.clone().unwrap_or_default(),
                a.worker.clone().unwrap_or_default(),
                a.started_at.map(time).unwrap_or_default(),
                a.duration()
                    .map(|t| format!("{} ms", t.num_milliseconds()))
                    .unwrap_or_default(),
                cut(a.error.as_deref().unwrap_or(""), 80),
            ]);
        }
        out.push_str(&indent(&t.render()));
    }
    if !d.journal.is_empty() {
        out.push_str("\njournal:\n");
        let mut t = Table::new(["#", "CALL", "NAME", "KEY", "STATE", "VALUE"]);
        for e in &d.journal {
            t.row([
                e.position.to_string(),
                e.kind.clone(),
                e.name.clone(),
                e.key.clone().unwrap_or_default(),
                e.state.clone(),
                cut(
                    &e.output.as_ref().map(|o| o.to_string()).unwrap_or_default(),
                    60,
                ),
            ]);
        }
        out.push_str(&indent(&t.render()));
    }
    if !d.children.is_empty() {
        out.push_str("\nchildren:\n");
        for c in &d.children {
            out.push_str(&format!("  {}  {}  {}\n", c.id, c.kind, c.state));
        }
    }
    if !d.events.is_empty() {
        out.push_str("\nevents:\n");
        for e in &d.events {
            out.push_str(&format!(
                "  {} / {}  {}\n",
                e.name,
                e.key,
                time(e.emitted_at)
            ));
        }
    }
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// A run, its steps drawn as a tree along the DAG's edges: each step under each of its
/// prerequisites, in full under the first and as a reference under the others.
pub(crate) fn run_tree(d: &RunDetail) -> String {
    let r = &d.run;
    let mut out = format!("run {}  {}  {}", r.id, r.name, r.state);
    if let Some(e) = &r.error {
        out.push_str(&format!("  ({})", cut(e, 80)));
    }
    out.push('\n');
    let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut has_parent = HashSet::new();
    for e in &d.edges {
        children
            .entry(e.from.as_str())
            .or_default()
            .push(e.to.as_str());
        has_parent.insert(e.to.as_str());
    }
    let order: Vec<&str> = r.steps.iter().map(|s| s.key.as_str()).collect();
    for list in children.values_mut() {
        list.sort_by_key(|k| order.iter().position(|o| o == k));
    }
    let roots: Vec<&str> = order
        .iter()
        .copied()
        .filter(|k| !has_parent.contains(k))
        .collect();
    let mut shown = HashSet::new();
    for (i, root) in roots.iter().enumerate() {
        draw(
            d,
            &children,
            root,
            "",
            i + 1 == roots.len(),
            &mut shown,
            &mut out,
        );
    }
    out
}

fn draw<'a>(
    d: &'a RunDetail,
    children: &BTreeMap<&'a str, Vec<&'a str>>,
    key: &'a str,
    prefix: &str,
    last: bool,
    shown: &mut HashSet<&'a str>,
    out: &mut String,
) {
    let branch = if last { "└─ " } else { "├─ " };
    let Some(step) = d.run.step(key) else {
        return;
    };
    if !shown.insert(key) {
        out.push_str(&format!("{prefix}{branch}{key} (see above)\n"));
        return;
    }
    let what = step
        .kind
        .clone()
        .or_else(|| step.gate.as_ref().map(|g| format!("gate {g}")))
        .unwrap_or_default();
    let mut line = format!("{prefix}{branch}{key}  {what}  {}", step.state);
    if let Some(job) = step.job {
        line.push_str(&format!("  job {job}"));
    }
    if let Some(e) = &step.error {
        line.push_str(&format!("  {}", cut(e, 60)));
    }
    out.push_str(&line);
    out.push('\n');
    let next_prefix = format!("{prefix}{}", if last { "   " } else { "│  " });
    if let Some(list) = children.get(key) {
        for (i, child) in list.iter().enumerate() {
            draw(
                d,
                children,
                child,
                &next_prefix,
                i + 1 == list.len(),
                shown,
                out,
            );
        }
    }
}
