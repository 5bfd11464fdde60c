//! Reports: human (a table that fits 100 columns), JSON, and JUnit XML for CI.

use std::fmt::Write as _;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};
use serde::Serialize;

use crate::check::Level;
use crate::session::{Exchange, Target};

/// Widest line of the human report.
pub const WIDTH: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "SKIP",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub id: &'static str,
    pub group: &'static str,
    pub level: Level,
    pub requirements: Vec<&'static str>,
    pub why: &'static str,
    pub outcome: Outcome,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub duration_ms: u64,
    /// The last exchanges before a failure.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Exchange>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub must_failed: usize,
    pub should_failed: usize,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub kit: String,
    pub target: String,
    pub engine: String,
    pub instance: String,
    pub duration_ms: u64,
    pub summary: Summary,
    pub results: Vec<CheckReport>,
}

impl Report {
    pub fn new(target: &Target, results: Vec<CheckReport>, elapsed: Duration) -> Self {
        let mut summary = Summary::default();
        for r in &results {
            match (r.outcome, r.level) {
                (Outcome::Pass, _) => summary.passed += 1,
                (Outcome::Skip, _) => summary.skipped += 1,
                (Outcome::Fail, Level::Must) => {
                    (summary.failed, summary.must_failed) =
                        (summary.failed + 1, summary.must_failed + 1)
                }
                (Outcome::Fail, Level::Should) => {
                    (summary.failed, summary.should_failed) =
                        (summary.failed + 1, summary.should_failed + 1)
                }
            }
        }
        Self {
            kit: format!("wkp1-conformance {}", env!("CARGO_PKG_VERSION")),
            target: target.base_url.to_string(),
            engine: target.engine.to_string(),
            instance: target.instance.to_string(),
            duration_ms: elapsed.as_millis() as u64,
            summary,
            results,
        }
    }

    /// Conformant: no MUST check failed.
    pub fn conformant(&self) -> bool {
        self.summary.must_failed == 0
    }

    /// One line per check that did not pass: id, outcome and why.
    pub fn not_passed(&self) -> Vec<String> {
        self.results
            .iter()
            .filter(|r| r.outcome != Outcome::Pass)
            .map(|r| format!("{} {:?}: {}", r.id, r.outcome, r.message.as_deref().unwrap_or("")))
            .collect()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("reports serialize")
    }

    /// JUnit XML: one suite per group, one case per check.
    pub fn to_junit(&self) -> String {
        let mut report = quick_junit::Report::new("wkp1-conformance");
        report.set_time(Duration::from_millis(self.duration_ms));
        let mut groups: Vec<&str> = Vec::new();
        for r in &self.results {
            if !groups.contains(&r.group) {
                groups.push(r.group);
            }
        }
        for group in groups {
            let mut suite = TestSuite::new(group);
            for r in self.results.iter().filter(|r| r.group == group) {
                let mut status = match r.outcome {
                    Outcome::Pass => TestCaseStatus::success(),
                    Outcome::Fail => TestCaseStatus::non_success(NonSuccessKind::Failure),
                    Outcome::Skip => TestCaseStatus::skipped(),
                };
                if let Some(message) = &r.message {
                    status.set_message(message.as_str());
                }
                if r.outcome == Outcome::Fail {
                    status.set_type(format!("{} {}", r.level, r.requirements.join(" ")));
                    status.set_description(evidence_text(&r.evidence));
                }
                let mut case = TestCase::new(r.id, status);
                case.set_classname(format!("wkp1.{group}"));
                case.set_time(Duration::from_millis(r.duration_ms));
                case.add_property(Property::new("level", r.level.to_string()));
                case.add_property(Property::new("requirements", r.requirements.join(" ")));
                suite.add_test_case(case);
            }
            report.add_test_suite(suite);
        }
        report.to_string().expect("JUnit XML serializes")
    }

    /// The human report: a line per check, then failures with their evidence, then the verdict.
    pub fn to_human(&self) -> String {
        let mut out = String::new();
        line(&mut out, &format!("WKP-1 conformance of {}", self.target));
        line(
            &mut out,
            &format!(
                "{} checks in {:.1} s, written under {}/{}",
                self.results.len(),
                self.duration_ms as f64 / 1000.0,
                self.engine,
                self.instance
            ),
        );
        line(&mut out, "");
        for r in &self.results {
            let requirements = r.requirements.join(" ");
            line(
                &mut out,
                &format!(
                    " {}  {:<6}  {:<56} {}",
                    r.outcome.label(),
                    r.level.to_string(),
                    r.id,
                    requirements
                ),
            );
        }
        let failures: Vec<&CheckReport> =
            self.results.iter().filter(|r| r.outcome == Outcome::Fail).collect();
        if !failures.is_empty() {
            line(&mut out, "");
            line(&mut out, "Failures");
            for r in failures {
                line(&mut out, &format!("  {} ({}; {})", r.id, r.level, r.requirements.join(", ")));
                line(&mut out, &format!("    why it matters: {}", r.why));
                for text in wrap(r.message.as_deref().unwrap_or(""), WIDTH - 4) {
                    line(&mut out, &format!("    {text}"));
                }
                for text in evidence_text(&r.evidence).lines() {
                    line(&mut out, &format!("    {text}"));
                }
            }
        }
        let skipped: Vec<&CheckReport> =
            self.results.iter().filter(|r| r.outcome == Outcome::Skip).collect();
        if !skipped.is_empty() {
            line(&mut out, "");
            line(&mut out, "Skipped");
            for r in skipped {
                line(&mut out, &format!("  {}: {}", r.id, r.message.as_deref().unwrap_or("")));
            }
        }
        let s = self.summary;
        line(&mut out, "");
        line(
            &mut out,
            &format!(
                "{} passed, {} failed ({} MUST, {} SHOULD), {} skipped: {}",
                s.passed,
                s.failed,
                s.must_failed,
                s.should_failed,
                s.skipped,
                if self.conformant() { "CONFORMANT" } else { "NOT CONFORMANT" }
            ),
        );
        out
    }
}

/// Appends `text` cut to the report width.
fn line(out: &mut String, text: &str) {
    if text.chars().count() > WIDTH {
        let cut: String = text.chars().take(WIDTH - 1).collect();
        let _ = writeln!(out, "{cut}…");
    } else {
        let _ = writeln!(out, "{text}");
    }
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

fn evidence_text(evidence: &[Exchange]) -> String {
    let mut out = String::new();
    for e in evidence {
        let _ = writeln!(out, "> {}  ({})", e.request, e.request_body);
        for h in &e.request_headers {
            let _ = writeln!(out, ">   {h}");
        }
        let status = e.status.map_or("no answer".to_owned(), |s| s.to_string());
        let response: String = e.response.chars().filter(|c| *c != '\n').take(300).collect();
        let _ = writeln!(out, "< {status} {response}");
    }
    out
}
