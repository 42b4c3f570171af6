//! `runledger`: the command line of runledger. Migrates the schema, lists and shows jobs, runs,
//! schedules, workers and events, retries, cancels and deletes (one or by filter), completes
//! gates, emits events, checks the installation (`doctor`) and serves the dashboard.
//!
//! Every command reads the database from `--database-url` or `DATABASE_URL`; every read has
//! `--json`; writes by filter ask for confirmation unless given `--yes`.

mod output;

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use chrono::{TimeDelta, Utc};
use clap::{Args, Parser, Subcommand};
use runledger::admin::{Admin, CheckLevel, JobFilter, MAX_BULK, PageRequest, RunFilter};
use runledger::job::{JobId, JobState};
use runledger::workflow::{RunId, RunState};
use runledger::{Error, Runledger};

use output::{Out, Table};

/// Operate runledger: jobs, workflow runs, schedules, workers, events and the dashboard.
#[derive(Debug, Parser)]
#[command(name = "runledger", version, about)]
struct Cli {
    /// The PostgreSQL database runledger lives in.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    /// Print reads as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Applies runledger's migrations (safe to run from many places at once).
    Migrate,
    /// Queues with their jobs by state, workers and the maintenance leader.
    Status,
    /// Jobs: list, show, retry, cancel, delete.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Workflow runs: list, show (the DAG as a tree), retry, cancel.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Gates of workflow runs.
    #[command(subcommand)]
    Gates(GatesCommand),
    /// Events that durable jobs wait for.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Cron schedules: list, pause, resume, trigger now.
    #[command(subcommand)]
    Schedules(SchedulesCommand),
    /// The registered workers.
    Workers,
    /// Checks the schema, the workers, stuck work, unknown kinds, bloat and settings; exits 1
    /// on a problem.
    Doctor,
    /// Serves the dashboard.
    Dashboard(DashboardArgs),
}

/// Which jobs.
#[derive(Debug, Args, Default)]
struct FilterArgs {
    /// Only jobs in this state (repeatable): scheduled, available, running, retryable,
    /// waiting, completed, failed, cancelled, diverged.
    #[arg(long = "state")]
    states: Vec<String>,
    /// Only jobs of this kind (repeatable).
    #[arg(long = "kind")]
    kinds: Vec<String>,
    /// Only jobs in this queue (repeatable).
    #[arg(long = "queue")]
    queues: Vec<String>,
    /// Only jobs whose errors contain this text.
    #[arg(long)]
    error: Option<String>,
    /// Only jobs created within this long: `30s`, `15m`, `2h`, `7d`.
    #[arg(long)]
    since: Option<String>,
    /// Only the step jobs of this workflow run.
    #[arg(long)]
    run: Option<i64>,
}

impl FilterArgs {
    fn is_empty(&self) -> bool {
        self.states.is_empty()
            && self.kinds.is_empty()
            && self.queues.is_empty()
            && self.error.is_none()
            && self.since.is_none()
            && self.run.is_none()
    }

    fn filter(&self) -> Result<JobFilter, Error> {
        let mut f = JobFilter::new();
        for s in &self.states {
            f = f.state(s.parse::<JobState>()?);
        }
        for k in &self.kinds {
            f = f.kind(k);
        }
        for q in &self.queues {
            f = f.queue(q);
        }
        if let Some(e) = &self.error {
            f = f.error_contains(e);
        }
        if let Some(since) = &self.since {
            let age = parse_age(since)?;
            let after = Utc::now().checked_sub_signed(age).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "--since {since} reaches before the calendar's start"
                ))
            })?;
            f = f.created_after(after);
        }
        if let Some(run) = self.run {
            f = f.run(RunId(run));
        }
        Ok(f)
    }
}

/// `30s`, `15m`, `2h`, `7d`.
fn parse_age(text: &str) -> Result<TimeDelta, Error> {
    let bad = || {
        Error::InvalidInput(format!(
            "`{text}` is not an age: write a number and a unit, as in 30s, 15m, 2h or 7d"
        ))
    };
    let (n, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: i64 = n.parse().map_err(|_| bad())?;
    match unit {
        "s" => TimeDelta::try_seconds(n),
        "m" => TimeDelta::try_minutes(n),
        "h" => TimeDelta::try_hours(n),
        "d" => TimeDelta::try_days(n),
        _ => None,
    }
    .ok_or_else(bad)
}

#[derive(Debug, Subcommand)]
enum JobsCommand {
    /// Lists jobs, newest first.
    Ls {
        #[command(flatten)]
        filter: FilterArgs,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Start after this job id (the `next` of the previous page).
        #[arg(long)]
        after: Option<i64>,
    },
    /// Shows one job: attempts, errors, journal, children, why it is stuck.
    Show {
        /// The job's id.
        id: i64,
    },
    /// Retries failed, cancelled or diverged jobs: the ids given, or those the filter matches.
    Retry(ActArgs),
    /// Cancels jobs (running ones are asked to stop): the ids given, or those the filter matches.
    Cancel(ActArgs),
    /// Deletes jobs that are not running: the ids given, or those the filter matches.
    Delete(ActArgs),
}

#[derive(Debug, Args)]
struct ActArgs {
    /// The jobs' ids.
    ids: Vec<i64>,
    #[command(flatten)]
    filter: FilterArgs,
    /// The most jobs a filter touches.
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    /// Acts without asking (required when standard input is not a terminal).
    #[arg(long, short = 'y')]
    yes: bool,
    /// Says what would be touched, and touches nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Subcommand)]
enum RunsCommand {
    /// Lists runs, newest first.
    Ls {
        /// Only runs in this state: running, completed, failed, cancelled.
        #[arg(long)]
        state: Option<String>,
        /// Only runs of this workflow.
        #[arg(long)]
        name: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Start after this run id.
        #[arg(long)]
        after: Option<i64>,
    },
    /// Shows a run: its steps as a tree along the DAG's edges.
    Show {
        /// The run's id.
        id: i64,
    },
    /// Retries a failed or cancelled run from the steps that did not complete.
    Retry {
        /// The run's id.
        id: i64,
    },
    /// Cancels a running run.
    Cancel {
        /// The run's id.
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
enum GatesCommand {
    /// Completes gate `gate` of run `run`.
    Complete {
        /// The run's id.
        run: i64,
        /// The gate's name.
        gate: String,
    },
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// Lists emitted events, newest first.
    Ls {
        /// Only events with this name.
        #[arg(long)]
        name: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Emits an event (the first emission of a name and key wins).
    Emit {
        /// The event's name.
        name: String,
        /// Its key.
        key: String,
        /// Its payload, as JSON.
        #[arg(long, default_value = "null")]
        payload: String,
    },
}

#[derive(Debug, Subcommand)]
enum SchedulesCommand {
    /// Lists schedules.
    Ls,
    /// Pauses a schedule.
    Pause {
        /// The schedule's name.
        name: String,
    },
    /// Resumes a schedule.
    Resume {
        /// The schedule's name.
        name: String,
    },
    /// Enqueues one job from a schedule now.
    Trigger {
        /// The schedule's name.
        name: String,
    },
}

#[derive(Debug, Args)]
struct DashboardArgs {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:7890")]
    listen: String,
    /// Serve pages only: no retry, cancel, delete or any other write.
    #[arg(long)]
    read_only: bool,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

async fn connect(url: Option<&str>) -> Result<Runledger, Error> {
    let url = url.ok_or_else(|| {
        Error::InvalidInput(
            "no database: pass --database-url or set DATABASE_URL (postgres://user:pass@host/db)"
                .to_owned(),
        )
    })?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(url)
        .await?;
    Ok(Runledger::new(pool))
}

async fn run(cli: Cli) -> Result<ExitCode, Error> {
    let rl = connect(cli.database_url.as_deref()).await?;
    let admin = rl.admin();
    let out = Out::new(cli.json);
    match cli.command {
        Command::Migrate => {
            runledger::migrate(rl.pool()).await?;
            out.line("migrations applied");
        }
        Command::Status => status(&admin, &out).await?,
        Command::Jobs(c) => return jobs(&admin, &out, c).await,
        Command::Runs(c) => runs(&admin, &out, c).await?,
        Command::Gates(GatesCommand::Complete { run, gate }) => {
            let outcome = admin.complete_gate(RunId(run), &gate).await?;
            out.line(&format!("gate `{gate}` of run {run}: {outcome:?}"));
        }
        Command::Events(EventsCommand::Ls { name, limit }) => {
            let events = admin.events(name.as_deref(), None, limit).await?;
            out.print(&events, || {
                let mut t = Table::new(["NAME", "KEY", "EMITTED", "PAYLOAD"]);
                for e in &events {
                    t.row([
                        e.name.clone(),
                        e.key.clone(),
                        output::time(e.emitted_at),
                        e.payload.to_string(),
                    ]);
                }
                t.render()
            });
        }
        Command::Events(EventsCommand::Emit { name, key, payload }) => {
            let payload: serde_json::Value = serde_json::from_str(&payload)
                .map_err(|e| Error::InvalidInput(format!("--payload is not JSON: {e}")))?;
            if admin.emit_event(&name, &key, &payload).await? {
                out.line(&format!("event `{name}` / `{key}` emitted"));
            } else {
                out.line(&format!(
                    "event `{name}` / `{key}` was emitted before; the first emission stands"
                ));
            }
        }
        Command::Schedules(c) => schedules(&admin, &out, c).await?,
        Command::Workers => {
            let workers = admin.workers().await?;
            out.print(&workers, || {
                let mut t = Table::new([
                    "WORKER", "HOST", "PID", "VERSION", "RUNNING", "QUEUES", "SEEN", "ROLE",
                ]);
                for w in &workers {
                    t.row([
                        w.id.clone(),
                        w.host.clone().unwrap_or_default(),
                        w.pid.map(|p| p.to_string()).unwrap_or_default(),
                        w.version.clone().unwrap_or_default(),
                        format!(
                            "{}/{}",
                            w.running,
                            w.concurrency.map(|c| c.to_string()).unwrap_or_default()
                        ),
                        w.queues.join(","),
                        output::time(w.seen_at),
                        match (w.leader, w.live) {
                            (true, _) => "leader".to_owned(),
                            (false, true) => String::new(),
                            (false, false) => "silent".to_owned(),
                        },
                    ]);
                }
                t.render()
            });
        }
        Command::Doctor => {
            let report = admin.doctor().await?;
            out.print(&report, || {
                let mut text = String::new();
                for c in &report.checks {
                    let mark = match c.level {
                        CheckLevel::Ok => "ok     ",
                        CheckLevel::Warning => "warning",
                        CheckLevel::Problem => "PROBLEM",
                    };
                    text.push_str(&format!("{mark}  {:<8}  {}\n", c.name, c.message));
                }
                text
            });
            if report.worst() == CheckLevel::Problem {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Dashboard(args) => dashboard(admin, args).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn status(admin: &Admin, out: &Out) -> Result<(), Error> {
    let queues = admin.queues().await?;
    let workers = admin.workers().await?;
    let leader = admin.client().maintenance_leader().await?;
    let json = serde_json::json!({
        "queues": queues,
        "workers": workers.iter().filter(|w| w.live).count(),
        "leader": leader.as_ref().map(|l| l.worker.clone()),
    });
    out.print(&json, || {
        let mut t = Table::new([
            "QUEUE",
            "AVAILABLE",
            "RUNNING",
            "SCHEDULED",
            "RETRYABLE",
            "WAITING",
            "DONE 1H",
            "FAILED 1H",
            "OLDEST",
        ]);
        for q in &queues {
            let n = |s: &str| q.pending.get(s).copied().unwrap_or(0).to_string();
            let f = |s: &str| q.finished_last_hour.get(s).copied().unwrap_or(0);
            t.row([
                q.queue.clone(),
                n("available"),
                n("running"),
                n("scheduled"),
                n("retryable"),
                n("waiting"),
                f("completed").to_string(),
                (f("failed") + f("cancelled") + f("diverged")).to_string(),
                format!("{:.0} s", q.oldest_available_s),
            ]);
        }
        format!(
            "{}\nworkers: {} live\nleader: {}\n",
            t.render(),
            workers.iter().filter(|w| w.live).count(),
            leader.map_or_else(|| "none".to_owned(), |l| l.worker)
        )
    });
    Ok(())
}

fn jobs_table(jobs: &[runledger::admin::JobSummary]) -> String {
    let mut t = Table::new([
        "ID", "KIND", "QUEUE", "STATE", "ATTEMPT", "CREATED", "ERROR",
    ]);
    for j in jobs {
        t.row([
            j.id.to_string(),
            j.kind.clone(),
            j.queue.clone(),
            j.state.to_string(),
            format!("{}/{}", j.attempt, j.max_attempts),
            output::time(j.created_at),
            output::cut(j.last_error.as_deref().unwrap_or(""), 60),
        ]);
    }
    t.render()
}

async fn jobs(admin: &Admin, out: &Out, command: JobsCommand) -> Result<ExitCode, Error> {
    match command {
        JobsCommand::Ls {
            filter,
            limit,
            after,
        } => {
            let page = admin
                .jobs(&filter.filter()?, PageRequest { after, limit })
                .await?;
            out.print(&page, || {
                output::with_more(jobs_table(&page.items), page.next)
            });
        }
        JobsCommand::Show { id } => {
            let Some(d) = admin.job(JobId(id)).await? else {
                return Err(Error::JobNotFound { id: JobId(id) });
            };
            out.print(&d, || output::job_detail(&d));
        }
        JobsCommand::Retry(a) => return act(admin, out, a, Act::Retry).await,
        JobsCommand::Cancel(a) => return act(admin, out, a, Act::Cancel).await,
        JobsCommand::Delete(a) => return act(admin, out, a, Act::Delete).await,
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Clone, Copy)]
enum Act {
    Retry,
    Cancel,
    Delete,
}

impl Act {
    fn verb(self) -> &'static str {
        match self {
            Act::Retry => "retry",
            Act::Cancel => "cancel",
            Act::Delete => "delete",
        }
    }
}

async fn act(admin: &Admin, out: &Out, a: ActArgs, act: Act) -> Result<ExitCode, Error> {
    if !a.ids.is_empty() && !a.filter.is_empty() {
        return Err(Error::InvalidInput(
            "give job ids or a filter, not both".to_owned(),
        ));
    }
    if a.ids.is_empty() && a.filter.is_empty() {
        return Err(Error::InvalidInput(format!(
            "which jobs? give their ids, or a filter such as `--state failed --kind charge` \
             (`runledger jobs {} --help`)",
            act.verb()
        )));
    }
    let by_filter = a.ids.is_empty();
    let mut filter = if by_filter {
        // The states the action applies to, unless the filter names some: what is counted and
        // confirmed is what will be touched.
        let mut f = a.filter.filter()?;
        if a.filter.states.is_empty() {
            let states: Vec<JobState> = match act {
                Act::Retry => vec![JobState::Failed, JobState::Cancelled, JobState::Diverged],
                Act::Cancel => JobState::ALL
                    .into_iter()
                    .filter(|s| !s.is_finished())
                    .collect(),
                Act::Delete => Vec::new(),
            };
            for s in states {
                f = f.state(s);
            }
        }
        f
    } else {
        a.ids
            .iter()
            .fold(JobFilter::new(), |f, id| f.id(JobId(*id)))
    };
    if by_filter {
        let limit = a.limit.min(MAX_BULK);
        let targets = admin.job_ids(&filter, limit).await?;
        if a.dry_run {
            out.line(&format!(
                "would {} up to {} job(s) matching the filter (those in a state that allows it)",
                act.verb(),
                targets.len()
            ));
            return Ok(ExitCode::SUCCESS);
        }
        if targets.is_empty() {
            out.line("no job matches");
            return Ok(ExitCode::SUCCESS);
        }
        if !a.yes && !confirm(act.verb(), targets.len())? {
            out.line("nothing done");
            return Ok(ExitCode::from(1));
        }
        filter = targets.iter().fold(JobFilter::new(), |f, id| f.id(*id));
    } else if a.dry_run {
        out.line(&format!("would {} job(s) {:?}", act.verb(), a.ids));
        return Ok(ExitCode::SUCCESS);
    }
    let n = if by_filter {
        a.limit.min(MAX_BULK)
    } else {
        a.ids.len()
    };
    if !by_filter && matches!(act, Act::Retry) {
        // One by one, so that each id that cannot be retried says why.
        let mut retried = Vec::new();
        let mut refused = 0;
        for id in &a.ids {
            match admin.retry_job(JobId(*id)).await {
                Ok(true) => retried.push(id.to_string()),
                Ok(false) => {
                    refused += 1;
                    eprintln!(
                        "job {id}: not retried: only a failed, cancelled or diverged job can be"
                    );
                }
                Err(error) => {
                    refused += 1;
                    eprintln!("job {id}: {error}");
                }
            }
        }
        out.print(&retried, || {
            format!("{} job(s) retried: {}\n", retried.len(), retried.join(", "))
        });
        return Ok(if refused > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }
    let done: Vec<String> = match act {
        Act::Retry => admin
            .retry_jobs(&filter, n)
            .await?
            .iter()
            .map(ToString::to_string)
            .collect(),
        Act::Cancel => admin
            .cancel_jobs(&filter, n)
            .await?
            .iter()
            .map(|(id, outcome)| format!("{id} ({outcome:?})"))
            .collect(),
        Act::Delete => admin
            .delete_jobs(&filter, n)
            .await?
            .iter()
            .map(ToString::to_string)
            .collect(),
    };
    out.print(&done, || {
        format!(
            "{} job(s) {}: {}\n",
            done.len(),
            match act {
                Act::Retry => "retried",
                Act::Cancel => "cancelled or asked to stop",
                Act::Delete => "deleted",
            },
            done.join(", ")
        )
    });
    Ok(ExitCode::SUCCESS)
}

/// Asks on the terminal whether to `verb` up to `n` jobs; refuses when standard input is not
/// one.
fn confirm(verb: &str, n: usize) -> Result<bool, Error> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Error::InvalidInput(format!(
            "this would {verb} up to {n} job(s) and needs confirmation: pass --yes (standard \
             input is not a terminal to ask on)"
        )));
    }
    eprint!("{verb} up to {n} job(s)? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::InvalidInput(format!("reading the answer: {e}")))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

async fn runs(admin: &Admin, out: &Out, command: RunsCommand) -> Result<(), Error> {
    match command {
        RunsCommand::Ls {
            state,
            name,
            limit,
            after,
        } => {
            let mut filter = RunFilter::new();
            if let Some(s) = state {
                filter = filter.state(s.parse::<RunState>()?);
            }
            if let Some(n) = name {
                filter = filter.name(n);
            }
            let page = admin.runs(&filter, PageRequest { after, limit }).await?;
            out.print(&page, || {
                let mut t = Table::new([
                    "ID", "WORKFLOW", "STATE", "ACTIVE", "FAILED", "STARTED", "ERROR",
                ]);
                for r in &page.items {
                    t.row([
                        r.id.to_string(),
                        r.name.clone(),
                        r.state.to_string(),
                        r.steps_active.to_string(),
                        r.steps_failed.to_string(),
                        output::time(r.created_at),
                        output::cut(r.error.as_deref().unwrap_or(""), 60),
                    ]);
                }
                output::with_more(t.render(), page.next)
            });
        }
        RunsCommand::Show { id } => {
            let Some(d) = admin.run(RunId(id)).await? else {
                return Err(Error::RunNotFound { run: RunId(id) });
            };
            out.print(&d, || output::run_tree(&d));
        }
        RunsCommand::Retry { id } => {
            let jobs = admin.retry_run(RunId(id)).await?;
            out.line(&format!("run {id} retried: {jobs} step job(s) enqueued"));
        }
        RunsCommand::Cancel { id } => {
            let before = admin.cancel_run(RunId(id)).await?;
            out.line(&format!("run {id} cancel: it was {before}"));
        }
    }
    Ok(())
}

async fn schedules(admin: &Admin, out: &Out, command: SchedulesCommand) -> Result<(), Error> {
    match command {
        SchedulesCommand::Ls => {
            let list = admin.schedules().await?;
            let json: Vec<serde_json::Value> = list
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "name": s.name, "kind": s.kind, "expression": s.expression,
                        "timezone": s.timezone, "queue": s.queue, "paused": s.paused,
                        "next_fire_at": s.next_fire_at, "last_slot": s.last_slot,
                    })
                })
                .collect();
            out.print(&json, || {
                let mut t = Table::new(["NAME", "KIND", "CRON", "ZONE", "QUEUE", "NEXT", "STATE"]);
                for s in &list {
                    t.row([
                        s.name.clone(),
                        s.kind.clone(),
                        s.expression.clone(),
                        s.timezone.clone(),
                        s.queue.clone(),
                        s.next_fire_at.map(output::time).unwrap_or_default(),
                        if s.paused { "paused" } else { "active" }.to_owned(),
                    ]);
                }
                t.render()
            });
        }
        SchedulesCommand::Pause { name } => {
            admin.pause_schedule(&name).await?;
            out.line(&format!("schedule `{name}` paused"));
        }
        SchedulesCommand::Resume { name } => {
            admin.resume_schedule(&name).await?;
            out.line(&format!("schedule `{name}` resumed"));
        }
        SchedulesCommand::Trigger { name } => {
            let id = admin.trigger_schedule(&name).await?;
            out.line(&format!("schedule `{name}` triggered: job {id}"));
        }
    }
    Ok(())
}

async fn dashboard(admin: Admin, args: DashboardArgs) -> Result<(), Error> {
    use runledger_dashboard::{Access, DashboardConfig};
    let access = if args.read_only {
        Access::Read
    } else {
        Access::Write
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| Error::InvalidInput(format!("cannot listen on {}: {e}", args.listen)))?;
    let hosts = allowed_hosts(
        &listener
            .local_addr()
            .map_err(|e| Error::InvalidInput(format!("cannot listen on {}: {e}", args.listen)))?,
    );
    // Only requests addressed to this listener by name or address: a page of another site whose
    // name is made to resolve to this machine (DNS rebinding) gets nothing.
    let authorize = move |req: &axum::http::request::Parts| {
        let host = req
            .headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .or_else(|| req.uri.authority().map(|a| a.to_string()));
        match (&hosts, host) {
            (None, _) => access,
            (Some(allowed), Some(host)) if allowed.contains(&host) => access,
            _ => Access::None,
        }
    };
    let router = runledger_dashboard::router(admin, DashboardConfig::new(authorize));
    eprintln!(
        "dashboard on http://{} ({})",
        args.listen,
        if args.read_only {
            "read-only"
        } else {
            "read and write: keep it on a trusted network"
        }
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| Error::InvalidInput(format!("the dashboard stopped: {e}")))
}

/// The `Host` values a dashboard listening on `addr` answers: its address, and `localhost`
/// for a loopback address; `None` (any) when it listens on every interface, where the
/// operator puts it behind a proxy that checks hosts and logins.
fn allowed_hosts(addr: &std::net::SocketAddr) -> Option<Vec<String>> {
    if addr.ip().is_unspecified() {
        return None;
    }
    let port = addr.port();
    let mut hosts = vec![addr.to_string()];
    if addr.ip().is_loopback() {
        hosts.extend([
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
            format!("[::1]:{port}"),
        ]);
    }
    Some(hosts)
}
