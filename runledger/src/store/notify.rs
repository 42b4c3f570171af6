//! The wake-up protocol: the two channels and the messages sent on them, in one place for the
//! Rust that sends and parses them and the SQL that sends them (the fragments `notify_queue!`
//! and `notify_cancel!` in `store/mod.rs`, and the functions of the migrations, which a test
//! below checks against this file).
//!
//! | message | channel | payload | sent by | wakes |
//! |---|---|---|---|---|
//! | [`Wake::Queue`] | `runledger_jobs` | `a:<queue>` | enqueues, the stager, outcomes, rescues, released steps, cron fires | the queue's producer |
//! | [`Wake::Stager`] | `runledger_jobs` | `s` | enqueues of scheduled jobs, a stopping worker | the stagers |
//! | [`Wake::Schedules`] | `runledger_control` | `schedules` | schedule writes | the schedulers |
//! | [`Wake::Cancel`] | `runledger_control` | `cancel:<id>` | cancels of running jobs | the job's worker |

/// The channel that announces work.
pub(crate) const JOBS_CHANNEL: &str = "runledger_jobs";

/// The channel of control messages to workers.
pub(crate) const CONTROL_CHANNEL: &str = "runledger_control";

/// One wake-up message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Jobs are available on this queue.
    Queue(String),
    /// A scheduled job or a retry was written: the stagers look for due jobs.
    Stager,
    /// A schedule was added, changed or resumed: the scheduler looks again.
    Schedules,
    /// A running job was asked to stop.
    Cancel(i64),
}

impl Wake {
    /// The channel the message is sent on.
    pub(crate) fn channel(&self) -> &'static str {
        match self {
            Wake::Queue(_) | Wake::Stager => JOBS_CHANNEL,
            Wake::Schedules | Wake::Cancel(_) => CONTROL_CHANNEL,
        }
    }

    /// The message's payload.
    pub(crate) fn payload(&self) -> String {
        match self {
            Wake::Queue(queue) => format!("a:{queue}"),
            Wake::Stager => "s".to_owned(),
            Wake::Schedules => "schedules".to_owned(),
            Wake::Cancel(id) => format!("cancel:{id}"),
        }
    }

    /// The message received as `payload` on `channel`; `None` for anything else.
    pub(crate) fn parse(channel: &str, payload: &str) -> Option<Wake> {
        match channel {
            JOBS_CHANNEL => {
                if let Some(queue) = payload.strip_prefix("a:") {
                    Some(Wake::Queue(queue.to_owned()))
                } else {
                    (payload == "s").then_some(Wake::Stager)
                }
            }
            CONTROL_CHANNEL => {
                if payload == "schedules" {
                    Some(Wake::Schedules)
                } else {
                    payload
                        .strip_prefix("cancel:")
                        .and_then(|id| id.parse().ok())
                        .map(Wake::Cancel)
                }
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_parses_back() {
        for wake in [
            Wake::Queue("orders.eu:1".into()),
            Wake::Stager,
            Wake::Schedules,
            Wake::Cancel(42),
        ] {
            assert_eq!(
                Wake::parse(wake.channel(), &wake.payload()),
                Some(wake.clone())
            );
        }
        assert_eq!(Wake::parse(JOBS_CHANNEL, "cancel:1"), None);
        assert_eq!(Wake::parse(CONTROL_CHANNEL, "cancel:x"), None);
        assert_eq!(Wake::parse("other", "s"), None);
    }

    #[test]
    fn the_sql_fragments_speak_the_same_protocol() {
        // The fragments build `<prefix> || <expression>`: their prefix is the payload of a
        // message with an empty argument, on the message's channel.
        let queue = Wake::Queue(String::new());
        assert_eq!(
            notify_queue!("q"),
            format!(
                "pg_notify('{}', '{}' || q)",
                queue.channel(),
                queue.payload()
            )
        );
        assert_eq!(
            notify_cancel!("t.id"),
            format!("pg_notify('{CONTROL_CHANNEL}', 'cancel:' || t.id)")
        );
        assert_eq!(Wake::Cancel(7).payload(), "cancel:7");
        // The migrations' functions send the same fragments.
        let migrations = include_str!("../../../migrations/0002_workflows.sql");
        assert!(migrations.contains(notify_queue!("q.queue")));
        assert!(migrations.contains(notify_cancel!("id")));
        for line in migrations.lines().filter(|l| l.contains("pg_notify")) {
            assert!(
                line.contains(notify_queue!("q.queue")) || line.contains(notify_cancel!("id")),
                "a notification outside the protocol: {line}"
            );
        }
    }
}
