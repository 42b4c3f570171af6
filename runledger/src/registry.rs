//! Job kinds collected through `inventory`: every `#[job]` linked into the binary registers one
//! [`JobRegistration`]; a worker builds its handler table from them and refuses duplicates.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::error::Error;
use crate::job::context::JobContext;
use crate::job::definition::{Job, Storable};
use crate::job::error::JobError;
use crate::job::inject::StateRequirement;
use crate::job::options::JobOptions;
use crate::job::request::JobRequest;

/// A boxed, sendable future.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The type-erased handler of one kind: JSON payload text in, JSON output text out.
pub(crate) type ErasedHandler = fn(Arc<JobContext>, String) -> BoxFuture<Result<String, JobError>>;

/// The registration of one job kind, submitted by the code `#[job]` generates.
#[derive(Debug)]
pub struct JobRegistration {
    pub(crate) kind: &'static str,
    pub(crate) aliases: &'static [&'static str],
    pub(crate) options: JobOptions,
    pub(crate) type_name: fn() -> &'static str,
    pub(crate) handler: ErasedHandler,
    pub(crate) required_state: fn() -> Vec<StateRequirement>,
    pub(crate) cron_request: fn() -> Option<JobRequest>,
}

impl JobRegistration {
    /// The registration of job type `J`.
    pub const fn of<J: Job>() -> Self {
        Self {
            kind: J::KIND,
            aliases: J::ALIASES,
            options: J::OPTIONS,
            type_name: std::any::type_name::<J>,
            handler: run_erased::<J>,
            required_state: J::required_state,
            cron_request: cron_request::<J>,
        }
    }

    /// The kind's name.
    pub fn kind(&self) -> &'static str {
        self.kind
    }
}

inventory::collect!(JobRegistration);

fn cron_request<J: Job>() -> Option<JobRequest> {
    J::cron_args().map(JobRequest::new)
}

fn run_erased<J: Job>(ctx: Arc<JobContext>, args: String) -> BoxFuture<Result<String, JobError>> {
    Box::pin(async move {
        let job: J = serde_json::from_str(&args).map_err(|e| {
            JobError::fatal(format_args!(
                "payload does not deserialize into `{}`: {}; the stored payload was written by an \
                 incompatible version of the job",
                std::any::type_name::<J>(),
                serde_message::<J>(&e)
            ))
        })?;
        let output = job.run(&ctx).await?;
        Storable::to_json(&output).map_err(|e| {
            JobError::fatal(format_args!(
                "output does not serialize to JSON: {}",
                serde_message::<J>(&e)
            ))
        })
    })
}

/// A serde error as written into a job's errors: in full, or for a sensitive kind without its
/// text (which can quote the offending value), only its category and position.
fn serde_message<J: Job>(error: &serde_json::Error) -> String {
    if !J::OPTIONS.sensitive {
        return error.to_string();
    }
    let category = match error.classify() {
        serde_json::error::Category::Io => "an I/O error",
        serde_json::error::Category::Syntax => "a syntax error",
        serde_json::error::Category::Data => "a data error",
        serde_json::error::Category::Eof => "unexpected end of input",
    };
    format!(
        "{category} at line {} column {} (details withheld: the job is sensitive)",
        error.line(),
        error.column()
    )
}

/// Whether kind `kind` (or an alias) is declared `#[job(sensitive)]` in this binary.
pub(crate) fn is_sensitive(kind: &str) -> bool {
    all().any(|reg| reg.options.sensitive && (reg.kind == kind || reg.aliases.contains(&kind)))
}

/// Every registration linked into the binary.
pub(crate) fn all() -> impl Iterator<Item = &'static JobRegistration> {
    inventory::iter::<JobRegistration>.into_iter()
}

/// Builds a kind-to-registration table (aliases included), refusing two registrations that
/// claim the same name.
pub(crate) fn table<'a>(
    regs: impl IntoIterator<Item = &'a JobRegistration>,
) -> Result<HashMap<&'static str, &'a JobRegistration>, Error> {
    let mut table: HashMap<&'static str, &'a JobRegistration> = HashMap::new();
    for reg in regs {
        for name in std::iter::once(reg.kind).chain(reg.aliases.iter().copied()) {
            if let Some(previous) = table.insert(name, reg) {
                return Err(Error::Config(format!(
                    "job kind `{name}` is registered twice, by `{}` and by `{}`; give one of them \
                     another `kind = \"...\"`",
                    (previous.type_name)(),
                    (reg.type_name)()
                )));
            }
        }
    }
    Ok(table)
}
