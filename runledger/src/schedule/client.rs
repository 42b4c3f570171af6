//! The schedule calls of the [`Runledger`] client.

use sqlx::{PgConnection, PgExecutor};

use super::{Schedule, ScheduleInfo};
use crate::client::runledger::Runledger;
use crate::error::Error;
use crate::schedule::CronSchedule;
use crate::store;

/// Cron schedules.
impl Runledger {
    /// Adds a schedule. Its first slot is the first one after now (database clock). Fails with
    /// [`Error::Schedule`] for an invalid expression or time zone, [`Error::InvalidInput`] for
    /// an invalid name, and [`Error::ScheduleExists`] if a schedule of this name exists.
    pub async fn add_schedule(&self, schedule: Schedule) -> Result<ScheduleInfo, Error> {
        let mut conn = self.pool().acquire().await?;
        self.write_schedule(&mut conn, schedule, true).await
    }

    /// [`add_schedule`](Self::add_schedule) inside the caller's transaction.
    pub async fn add_schedule_tx(
        &self,
        tx: &mut PgConnection,
        schedule: Schedule,
    ) -> Result<ScheduleInfo, Error> {
        self.write_schedule(tx, schedule, true).await
    }

    /// Replaces the definition of an existing schedule (a paused schedule stays paused). Its
    /// next slot is recomputed from now: slots already fired never fire again. A schedule
    /// declared in code is reset to its declaration by the next worker start unless the two
    /// agree. Fails with [`Error::ScheduleNotFound`] if there is none of this name.
    pub async fn update_schedule(&self, schedule: Schedule) -> Result<ScheduleInfo, Error> {
        let mut conn = self.pool().acquire().await?;
        self.write_schedule(&mut conn, schedule, false).await
    }

    /// [`update_schedule`](Self::update_schedule) inside the caller's transaction.
    pub async fn update_schedule_tx(
        &self,
        tx: &mut PgConnection,
        schedule: Schedule,
    ) -> Result<ScheduleInfo, Error> {
        self.write_schedule(tx, schedule, false).await
    }

    /// Inserts (`new`) or updates a schedule, with its next slot after now, in a transaction
    /// of its own on `conn` (a savepoint when `conn` is in the caller's transaction).
    async fn write_schedule(
        &self,
        conn: &mut PgConnection,
        schedule: Schedule,
        new: bool,
    ) -> Result<ScheduleInfo, Error> {
        schedule.check()?;
        let mut tx = sqlx::Connection::begin(conn).await?;
        let now = store::schedules::now(&mut *tx).await?;
        let row = schedule.into_row(now, self.max_payload_bytes())?;
        if new && !store::schedules::insert(&mut *tx, &row).await? {
            return Err(Error::ScheduleExists { schedule: row.name });
        }
        if !new && !store::schedules::update(&mut *tx, &row).await? {
            return Err(not_found(&row.name));
        }
        let info = store::schedules::get(&mut *tx, &row.name)
            .await?
            .map(ScheduleInfo::from_row)
            .ok_or_else(|| not_found(&row.name))?;
        store::schedules::announce_change(&mut *tx).await?;
        tx.commit().await?;
        Ok(info)
    }

    /// Pauses a schedule: it fires nothing until resumed.
    pub async fn pause_schedule(&self, name: &str) -> Result<(), Error> {
        pause(self.pool(), name).await
    }

    /// [`pause_schedule`](Self::pause_schedule) inside the caller's transaction.
    pub async fn pause_schedule_tx(&self, tx: &mut PgConnection, name: &str) -> Result<(), Error> {
        pause(tx, name).await
    }

    /// Resumes a paused schedule from its next slot after now; the slots that passed while it
    /// was paused are not fired. Resuming a schedule that is not paused changes nothing.
    pub async fn resume_schedule(&self, name: &str) -> Result<(), Error> {
        let mut conn = self.pool().acquire().await?;
        resume(&mut conn, name).await
    }

    /// [`resume_schedule`](Self::resume_schedule) inside the caller's transaction.
    pub async fn resume_schedule_tx(&self, tx: &mut PgConnection, name: &str) -> Result<(), Error> {
        resume(tx, name).await
    }

    /// Removes a schedule; returns false if there was none of this name. A schedule declared in
    /// code comes back at the next worker start while its `#[job(cron = ...)]` remains.
    pub async fn remove_schedule(&self, name: &str) -> Result<bool, Error> {
        store::schedules::delete(self.pool(), name).await
    }

    /// [`remove_schedule`](Self::remove_schedule) inside the caller's transaction.
    pub async fn remove_schedule_tx(
        &self,
        tx: &mut PgConnection,
        name: &str,
    ) -> Result<bool, Error> {
        store::schedules::delete(tx, name).await
    }

    /// One schedule by name.
    pub async fn schedule(&self, name: &str) -> Result<Option<ScheduleInfo>, Error> {
        Ok(store::schedules::get(self.pool(), name)
            .await?
            .map(ScheduleInfo::from_row))
    }

    /// Every schedule, by name.
    pub async fn schedules(&self) -> Result<Vec<ScheduleInfo>, Error> {
        Ok(store::schedules::list(self.pool())
            .await?
            .into_iter()
            .map(ScheduleInfo::from_row)
            .collect())
    }
}

fn not_found(name: &str) -> Error {
    Error::ScheduleNotFound {
        schedule: name.to_owned(),
    }
}

async fn pause<'e>(db: impl PgExecutor<'e>, name: &str) -> Result<(), Error> {
    if !store::schedules::pause(db, name).await? {
        return Err(not_found(name));
    }
    Ok(())
}

async fn resume(conn: &mut PgConnection, name: &str) -> Result<(), Error> {
    // The cursor is computed from the definition read, and written only if the schedule is
    // still paused at that revision; a concurrent change makes it read again.
    for _round in 0..5 {
        let Some(row) = store::schedules::get(&mut *conn, name).await? else {
            return Err(not_found(name));
        };
        if !row.paused {
            return Ok(());
        }
        let cron = CronSchedule::parse(&row.expression, &row.timezone).map_err(|error| {
            Error::Schedule {
                schedule: name.to_owned(),
                error,
            }
        })?;
        let now = store::schedules::now(&mut *conn).await?;
        if store::schedules::resume(&mut *conn, name, row.revision, cron.next_after(now)).await? {
            // Only a wake-up for the leader's scheduler, which looks within 30 s anyway.
            if let Err(error) = store::schedules::announce_change(&mut *conn).await {
                tracing::warn!(schedule = name, %error, "could not announce the resume");
            }
            return Ok(());
        }
    }
    Err(Error::Conflict(format!(
        "schedule `{name}` kept changing while it was being resumed; try again"
    )))
}
