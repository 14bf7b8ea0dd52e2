//! Cron triggers: once a minute, every enabled job's `TimerTrigger` and `SCMTrigger` specs
//! are read in their time zone (`TZ=`, else the controller's) and those matching the
//! minute fire: a timer queues a build ("Started by timer"), an SCM trigger polls
//! ([`super::poll`]).
//!
//! Only the minute that has just begun is ever checked: a controller that was down fires
//! nothing for the minutes it missed, as Jenkins. The store records the last minute each
//! trigger fired in, so a controller restarted within a minute does not fire it again.

use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use steward_protocol::cron::{CivilMinute, CronTabList};
use steward_protocol::job_xml::JobConfig;

use crate::state::AppState;
use crate::store::builds::CauseKind;
use crate::store::polls;

/// The user a timer's and a poll's builds are started by.
pub const SYSTEM_USER: &str = "SYSTEM";

/// Runs the minute ticks until the controller stops.
pub async fn run(state: AppState) {
    loop {
        let now = Timestamp::now();
        let into_minute = now.as_millisecond().rem_euclid(60_000);
        // Just after the minute begins, so the clock reads the new minute.
        let wait = Duration::from_millis((60_000 - into_minute) as u64 + 50);
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        tick(&state, Timestamp::now()).await;
    }
}

/// Fires what matches the minute `now` falls in.
pub async fn tick(state: &AppState, now: Timestamp) {
    let minute = now.as_millisecond().div_euclid(60_000);
    let Ok(jobs) = crate::jobs::list(state).await else {
        return;
    };
    for job in jobs {
        if job.config.disabled {
            continue;
        }
        let triggers = super::of_job(&job.config, &job.name);
        let specs = [
            ("timer", triggers.timer.as_deref()),
            ("scm", triggers.scm.as_ref().map(|t| t.spec.as_str())),
        ];
        for (kind, spec) in specs {
            let Some(spec) = spec else { continue };
            if !fires(spec, &job.name, now) {
                continue;
            }
            let (name, claimed_kind) = (job.name.clone(), kind);
            let claimed = state
                .store
                .call(move |c| polls::claim_minute(c, &name, claimed_kind, minute))
                .await;
            if !matches!(claimed, Ok(true)) {
                continue;
            }
            if kind == "timer" {
                let by = crate::audit::Actor::new(SYSTEM_USER, None);
                match crate::builds::enqueue(state, &job.name, &[], CauseKind::Timer, &by).await {
                    Ok(queued) => {
                        tracing::info!(job = ?job.name, queue_id = queued.id, "timer fired")
                    }
                    Err(e) => {
                        tracing::warn!(job = ?job.name, error = ?e.to_string(), "timer fired but the build cannot be queued")
                    }
                }
            } else {
                super::poll::spawn(state, &job.name, CauseKind::ScmChange, SYSTEM_USER);
            }
        }
    }
}

/// Whether `spec` (hashed with `job`) fires in the minute of `now`.
fn fires(spec: &str, job: &str, now: Timestamp) -> bool {
    let Ok(tabs) = CronTabList::parse(spec, job) else {
        return false;
    };
    if tabs.is_empty() {
        return false;
    }
    let Ok(zone) = zone(tabs.time_zone()) else {
        return false;
    };
    let local = now.to_zoned(zone);
    CivilMinute::new(
        i32::from(local.year()),
        local.month() as u8,
        local.day() as u8,
        local.hour() as u8,
        local.minute() as u8,
    )
    .is_some_and(|m| tabs.matches(&m))
}

fn zone(name: Option<&str>) -> Result<TimeZone, String> {
    match name {
        None => Ok(TimeZone::system()),
        Some(name) => TimeZone::get(name).map_err(|_| {
            format!(
                "unknown time zone \"{name}\": this controller's zone database does not have it"
            )
        }),
    }
}

/// Refuses a job whose trigger specs name a time zone the controller does not know.
pub fn check_zones(config: &JobConfig) -> Result<(), String> {
    let Ok(triggers) = config.triggers("") else {
        return Ok(());
    };
    let specs = [
        (
            steward_protocol::job_xml::triggers::TIMER_TRIGGER,
            triggers.timer,
        ),
        (
            steward_protocol::job_xml::triggers::SCM_TRIGGER,
            triggers.scm.map(|t| t.spec),
        ),
    ];
    for (element, spec) in specs {
        let Some(spec) = spec else { continue };
        if let Ok(tabs) = CronTabList::parse(&spec, "")
            && let Err(why) = zone(tabs.time_zone())
        {
            return Err(format!("invalid <spec> of <{element}>: {why}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_fires_in_its_time_zone() {
        // 2024-01-15 12:30 UTC is 13:30 in Paris.
        let now: Timestamp = "2024-01-15T12:30:10Z".parse().unwrap();
        assert!(fires("30 12 * * *", "j", now) || TimeZone::system() != TimeZone::UTC);
        assert!(fires("TZ=Europe/Paris\n30 13 * * *", "j", now));
        assert!(!fires("TZ=Europe/Paris\n30 12 * * *", "j", now));
        assert!(fires("TZ=UTC\n* * * * *", "j", now));
        assert!(!fires("TZ=Nowhere/Atlantis\n* * * * *", "j", now));
    }
}
