//! Running checks: each in its own session, a few at a time, each under a deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::check::{Check, CheckError};
use crate::report::{CheckReport, Outcome, Report};
use crate::session::{Session, Target};

/// Exchanges kept as evidence of a failure.
const EVIDENCE: usize = 6;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Groups or check ids to run; empty for all.
    pub only: Vec<String>,
    /// Checks running at once.
    pub concurrency: usize,
    /// Deadline for one check, all its requests included.
    pub check_timeout: Duration,
    /// Draw a progress bar on stderr (when it is a terminal).
    pub progress: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            only: Vec::new(),
            concurrency: 4,
            check_timeout: Duration::from_secs(180),
            progress: false,
        }
    }
}

/// The checks `only` selects, in catalogue order; an unknown name is an error.
pub fn select(checks: Vec<Check>, only: &[String]) -> Result<Vec<Check>, String> {
    for name in only {
        if !checks.iter().any(|c| c.group == name || c.id == name) {
            return Err(format!(
                "no check or group is called {name:?} (see `wkp1-conformance list`)"
            ));
        }
    }
    Ok(checks
        .into_iter()
        .filter(|c| only.is_empty() || only.iter().any(|n| n == c.group || n == c.id))
        .collect())
}

/// Runs `checks` against `target`.
pub async fn run(target: Target, checks: Vec<Check>, options: &RunOptions) -> Report {
    let started = Instant::now();
    let target = Arc::new(target);
    let bar = if options.progress {
        let bar =
            ProgressBar::with_draw_target(Some(checks.len() as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{bar:32.cyan/blue} {pos:>3}/{len} {wide_msg}")
                .expect("template")
                .progress_chars("=> "),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut results: Vec<(usize, CheckReport)> = futures::stream::iter(checks.iter().enumerate())
        .map(|(index, check)| {
            let (target, bar) = (target.clone(), bar.clone());
            async move {
                let report = run_one(target, check, options.check_timeout).await;
                bar.set_message(format!("{} {}", report.outcome.label(), check.id));
                bar.inc(1);
                (index, report)
            }
        })
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;
    bar.finish_and_clear();
    results.sort_by_key(|(index, _)| *index);
    Report::new(&target, results.into_iter().map(|(_, r)| r).collect(), started.elapsed())
}

async fn run_one(target: Arc<Target>, check: &Check, deadline: Duration) -> CheckReport {
    let started = Instant::now();
    let mut session = Session::new(target, check.id);
    let result = tokio::time::timeout(deadline, (check.run)(&mut session)).await;
    let _ = tokio::time::timeout(deadline, session.close_claims()).await;
    let (outcome, message) = match result {
        Ok(Ok(())) => (Outcome::Pass, None),
        Ok(Err(CheckError::Fail(message))) => (Outcome::Fail, Some(message)),
        Ok(Err(CheckError::Skip(why))) => (Outcome::Skip, Some(why)),
        Err(_) => (Outcome::Fail, Some(format!("the check did not finish within {deadline:?}"))),
    };
    let evidence = if outcome == Outcome::Fail {
        let from = session.transcript.len().saturating_sub(EVIDENCE);
        session.transcript.split_off(from)
    } else {
        Vec::new()
    };
    CheckReport {
        id: check.id,
        group: check.group,
        level: check.level,
        requirements: check.requirements.to_vec(),
        why: check.why,
        outcome,
        message,
        duration_ms: started.elapsed().as_millis() as u64,
        evidence,
    }
}
