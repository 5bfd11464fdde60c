//! Persistence settings, read only from `WEFTKIT_PERSIST_*` environment variables. Every problem
//! names the variable it comes from, and the server refuses to start until it is fixed.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use url::Url;
use wkp1_protocol::{KeyId, Secret, Subtree};

/// Where the engine persists to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersistMode {
    /// A function URL (Lambda, Cloud Run, Azure Functions, any HTTPS endpoint).
    Serverless,
    /// A long-running self-hosted function next to the engine (the sidecar).
    Container,
}

impl PersistMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PersistMode::Serverless => "serverless",
            PersistMode::Container => "container",
        }
    }
}

/// When boot restores the state from the function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreOnBoot {
    /// When the volume holds no database, or one that is behind what the function holds.
    Auto,
    /// Always: a database on the volume is moved aside first.
    Always,
    /// Never: the volume's database is the truth and is pushed as a snapshot if the function's
    /// state is not its own.
    Never,
}

/// Validated persistence settings.
#[derive(Clone)]
pub struct PersistConfig {
    pub mode: PersistMode,
    pub url: Url,
    pub key_id: KeyId,
    pub secret: Secret,
    pub schedule: croner::Cron,
    pub restore_on_boot: RestoreOnBoot,
    pub flush_budget: Duration,
    pub subtree: Subtree,
    /// Deltas after which the next tick pushes a snapshot even if the function did not ask.
    pub snapshot_every: u32,
    /// How long one upload or restore request keeps retrying an unavailable function.
    pub retry_for: Duration,
}

impl std::fmt::Debug for PersistConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistConfig")
            .field("mode", &self.mode)
            .field("url", &self.url.as_str())
            .field("key_id", &self.key_id.as_str())
            .field("schedule", &self.schedule.as_str())
            .field("restore_on_boot", &self.restore_on_boot)
            .field("flush_budget", &self.flush_budget)
            .field("subtree", &self.subtree.path())
            .field("snapshot_every", &self.snapshot_every)
            .field("retry_for", &self.retry_for)
            .finish_non_exhaustive()
    }
}

/// A setting that is missing or wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

fn problem(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError { variable, problem: problem.into() }
}

/// Every variable this module reads.
pub const VARIABLES: &[&str] = &[
    "WEFTKIT_PERSIST_MODE",
    "WEFTKIT_PERSIST_URL",
    "WEFTKIT_PERSIST_KEY_ID",
    "WEFTKIT_PERSIST_SECRET",
    "WEFTKIT_PERSIST_SECRET_FILE",
    "WEFTKIT_PERSIST_SCHEDULE",
    "WEFTKIT_PERSIST_RESTORE_ON_BOOT",
    "WEFTKIT_PERSIST_FLUSH_BUDGET",
    "WEFTKIT_PERSIST_ENGINE",
    "WEFTKIT_PERSIST_INSTANCE",
    "WEFTKIT_PERSIST_REPLICA",
    "WEFTKIT_PERSIST_SNAPSHOT_EVERY",
    "WEFTKIT_PERSIST_RETRY_FOR",
];

pub const DEFAULT_SCHEDULE: &str = "*/15 * * * *";
pub const DEFAULT_FLUSH_BUDGET: Duration = Duration::from_secs(30);
pub const DEFAULT_ENGINE: &str = "weftkit-kv";
pub const DEFAULT_REPLICA: &str = "0";
pub const DEFAULT_SNAPSHOT_EVERY: u32 = 96;
pub const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(60);

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

impl PersistConfig {
    /// Reads the settings through `var` (the process environment in production); `None` when
    /// persistence is disabled.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ConfigError> {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let mode = match get("WEFTKIT_PERSIST_MODE").as_deref().map(str::trim) {
            None | Some("disabled") => return Ok(None),
            Some("serverless") => PersistMode::Serverless,
            Some("container") => PersistMode::Container,
            Some(other) => {
                return Err(problem(
                    "WEFTKIT_PERSIST_MODE",
                    format!("{other:?} is not serverless, container or disabled"),
                ));
            }
        };
        let required = |name: &'static str| {
            get(name).ok_or_else(|| {
                problem(name, format!("is required when WEFTKIT_PERSIST_MODE={}", mode.as_str()))
            })
        };

        let url_text = required("WEFTKIT_PERSIST_URL")?;
        let url = Url::parse(url_text.trim()).map_err(|e| {
            problem("WEFTKIT_PERSIST_URL", format!("{url_text:?} is not a URL: {e}"))
        })?;
        match (url.scheme(), mode) {
            ("https", _) | ("http", PersistMode::Container) => {}
            ("http", PersistMode::Serverless) if is_loopback(&url) => {}
            ("http", PersistMode::Serverless) => {
                return Err(problem(
                    "WEFTKIT_PERSIST_URL",
                    "serverless mode sends state over the network: use https (plain http is allowed on loopback, or in container mode)",
                ));
            }
            (other, _) => {
                return Err(problem(
                    "WEFTKIT_PERSIST_URL",
                    format!("scheme {other} is not http or https"),
                ));
            }
        }

        let key_text = required("WEFTKIT_PERSIST_KEY_ID")?;
        let key_id = KeyId::new(key_text.trim())
            .map_err(|e| problem("WEFTKIT_PERSIST_KEY_ID", e.to_string()))?;
        let secret_text = match (get("WEFTKIT_PERSIST_SECRET"), get("WEFTKIT_PERSIST_SECRET_FILE"))
        {
            (Some(_), Some(_)) => {
                return Err(problem(
                    "WEFTKIT_PERSIST_SECRET",
                    "set WEFTKIT_PERSIST_SECRET or WEFTKIT_PERSIST_SECRET_FILE, not both",
                ));
            }
            (Some(secret), None) => secret,
            (None, Some(path)) => {
                std::fs::read_to_string(PathBuf::from(path.trim())).map_err(|e| {
                    problem("WEFTKIT_PERSIST_SECRET_FILE", format!("read {}: {e}", path.trim()))
                })?
            }
            (None, None) => {
                return Err(problem(
                    "WEFTKIT_PERSIST_SECRET",
                    "set WEFTKIT_PERSIST_SECRET or WEFTKIT_PERSIST_SECRET_FILE",
                ));
            }
        };
        let secret_variable = if get("WEFTKIT_PERSIST_SECRET").is_some() {
            "WEFTKIT_PERSIST_SECRET"
        } else {
            "WEFTKIT_PERSIST_SECRET_FILE"
        };
        // The message never echoes the secret.
        let secret = wkp1_protocol::signing::secret_from_text(&secret_text, &key_id)
            .map_err(|e| problem(secret_variable, format!("not a usable secret: {e}")))?;

        let schedule_text =
            get("WEFTKIT_PERSIST_SCHEDULE").unwrap_or_else(|| DEFAULT_SCHEDULE.into());
        let schedule = croner::Cron::from_str(schedule_text.trim()).map_err(|e| {
            problem(
                "WEFTKIT_PERSIST_SCHEDULE",
                format!("{schedule_text:?} is not a cron pattern: {e}"),
            )
        })?;

        let restore_on_boot = match get("WEFTKIT_PERSIST_RESTORE_ON_BOOT").as_deref().map(str::trim)
        {
            None | Some("auto") => RestoreOnBoot::Auto,
            Some("always") => RestoreOnBoot::Always,
            Some("never") => RestoreOnBoot::Never,
            Some(other) => {
                return Err(problem(
                    "WEFTKIT_PERSIST_RESTORE_ON_BOOT",
                    format!("{other:?} is not auto, always or never"),
                ));
            }
        };

        let duration = |variable: &'static str, default: Duration| match get(variable) {
            None => Ok(default),
            Some(text) => humantime::parse_duration(text.trim())
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    problem(
                        variable,
                        format!("{text:?} is not a positive duration such as 30s or 10s"),
                    )
                }),
        };
        let flush_budget = duration("WEFTKIT_PERSIST_FLUSH_BUDGET", DEFAULT_FLUSH_BUDGET)?;
        let retry_for = duration("WEFTKIT_PERSIST_RETRY_FOR", DEFAULT_RETRY_FOR)?;

        let engine = get("WEFTKIT_PERSIST_ENGINE").unwrap_or_else(|| DEFAULT_ENGINE.into());
        let instance = required("WEFTKIT_PERSIST_INSTANCE")?;
        let replica = get("WEFTKIT_PERSIST_REPLICA").unwrap_or_else(|| DEFAULT_REPLICA.into());
        let subtree =
            Subtree::new(engine.trim(), instance.trim(), replica.trim()).map_err(|e| {
                let variable = match e.field {
                    "engine" => "WEFTKIT_PERSIST_ENGINE",
                    "instance" => "WEFTKIT_PERSIST_INSTANCE",
                    _ => "WEFTKIT_PERSIST_REPLICA",
                };
                problem(variable, e.source.to_string())
            })?;

        let snapshot_every = match get("WEFTKIT_PERSIST_SNAPSHOT_EVERY") {
            None => DEFAULT_SNAPSHOT_EVERY,
            Some(text) => text.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                problem(
                    "WEFTKIT_PERSIST_SNAPSHOT_EVERY",
                    format!("{text:?} is not a positive number of deltas"),
                )
            })?,
        };

        Ok(Some(Self {
            mode,
            url,
            key_id,
            secret,
            schedule,
            restore_on_boot,
            flush_budget,
            subtree,
            snapshot_every,
            retry_for,
        }))
    }

    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// When the next scheduled tick is due, after `now`.
    pub fn next_tick(&self, now: std::time::SystemTime) -> Option<std::time::SystemTime> {
        let since_epoch = now.duration_since(std::time::UNIX_EPOCH).ok()?;
        let now = chrono::DateTime::from_timestamp(
            since_epoch.as_secs() as i64,
            since_epoch.subsec_nanos(),
        )?;
        let next = self.schedule.find_next_occurrence(&now, false).ok()?;
        let secs = u64::try_from(next.timestamp()).ok()?;
        Some(std::time::UNIX_EPOCH + Duration::from_secs(secs))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYnk=";

    fn config(vars: &[(&str, &str)]) -> Result<Option<PersistConfig>, ConfigError> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        PersistConfig::from_vars(|name| vars.get(name).cloned())
    }

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("WEFTKIT_PERSIST_MODE", "serverless"),
            ("WEFTKIT_PERSIST_URL", "https://fn.example.com/api"),
            ("WEFTKIT_PERSIST_KEY_ID", "k1"),
            ("WEFTKIT_PERSIST_SECRET", SECRET),
            ("WEFTKIT_PERSIST_INSTANCE", "orders"),
        ]
    }

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        // A secret file replaces the inline secret.
        let replaces = |k: &str, e: &str| {
            k == e || (e == "WEFTKIT_PERSIST_SECRET_FILE" && k == "WEFTKIT_PERSIST_SECRET")
        };
        let mut vars: Vec<_> = base()
            .into_iter()
            .filter(|(k, _)| !extra.iter().any(|(e, _)| replaces(k, e)))
            .collect();
        vars.extend_from_slice(extra);
        vars
    }

    #[test]
    fn disabled_by_default_with_documented_defaults_when_enabled() {
        assert!(config(&[]).unwrap().is_none());
        assert!(config(&[("WEFTKIT_PERSIST_MODE", "disabled")]).unwrap().is_none());
        let c = config(&base()).unwrap().unwrap();
        assert_eq!(c.mode, PersistMode::Serverless);
        assert_eq!(c.schedule.as_str(), DEFAULT_SCHEDULE);
        assert_eq!(c.restore_on_boot, RestoreOnBoot::Auto);
        assert_eq!(c.flush_budget, Duration::from_secs(30));
        assert_eq!(c.subtree.path(), "weftkit-kv/orders/0");
        let c = config(&with(&[
            ("WEFTKIT_PERSIST_FLUSH_BUDGET", "10s"),
            ("WEFTKIT_PERSIST_SCHEDULE", "*/5 * * * *"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.flush_budget, Duration::from_secs(10));
        let t0 = std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + 1);
        let next = c.next_tick(t0).unwrap();
        assert_eq!(next.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() % 300, 0);
        assert!(next > t0 && next.duration_since(t0).unwrap() <= Duration::from_secs(300));
    }

    #[test]
    fn every_problem_names_its_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("WEFTKIT_PERSIST_MODE", "sometimes")], "WEFTKIT_PERSIST_MODE"),
            (&[("WEFTKIT_PERSIST_URL", "not a url")], "WEFTKIT_PERSIST_URL"),
            (&[("WEFTKIT_PERSIST_URL", "http://fn.example.com")], "WEFTKIT_PERSIST_URL"),
            (&[("WEFTKIT_PERSIST_KEY_ID", "bad key!")], "WEFTKIT_PERSIST_KEY_ID"),
            (&[("WEFTKIT_PERSIST_SECRET", "short")], "WEFTKIT_PERSIST_SECRET"),
            (
                &[("WEFTKIT_PERSIST_SECRET_FILE", "/nonexistent/secret")],
                "WEFTKIT_PERSIST_SECRET_FILE",
            ),
            (&[("WEFTKIT_PERSIST_SCHEDULE", "every day")], "WEFTKIT_PERSIST_SCHEDULE"),
            (&[("WEFTKIT_PERSIST_RESTORE_ON_BOOT", "maybe")], "WEFTKIT_PERSIST_RESTORE_ON_BOOT"),
            (&[("WEFTKIT_PERSIST_FLUSH_BUDGET", "0s")], "WEFTKIT_PERSIST_FLUSH_BUDGET"),
            (&[("WEFTKIT_PERSIST_FLUSH_BUDGET", "soon")], "WEFTKIT_PERSIST_FLUSH_BUDGET"),
            (&[("WEFTKIT_PERSIST_INSTANCE", "Orders")], "WEFTKIT_PERSIST_INSTANCE"),
            (&[("WEFTKIT_PERSIST_REPLICA", "../x")], "WEFTKIT_PERSIST_REPLICA"),
            (&[("WEFTKIT_PERSIST_SNAPSHOT_EVERY", "0")], "WEFTKIT_PERSIST_SNAPSHOT_EVERY"),
            (&[("WEFTKIT_PERSIST_RETRY_FOR", "-1s")], "WEFTKIT_PERSIST_RETRY_FOR"),
        ];
        for (vars, variable) in cases {
            let err = config(&with(vars)).unwrap_err();
            assert_eq!(err.variable, *variable, "{vars:?}: {err}");
            assert!(!err.to_string().contains(SECRET), "secrets stay out of messages");
        }
        let mut missing = base();
        missing.retain(|(k, _)| *k != "WEFTKIT_PERSIST_INSTANCE");
        assert_eq!(config(&missing).unwrap_err().variable, "WEFTKIT_PERSIST_INSTANCE");
        // Plain http is fine on loopback and in container mode.
        assert!(config(&with(&[("WEFTKIT_PERSIST_URL", "http://127.0.0.1:9000")])).is_ok());
        assert!(
            config(&with(&[
                ("WEFTKIT_PERSIST_MODE", "container"),
                ("WEFTKIT_PERSIST_URL", "http://sidecar:9000")
            ]))
            .is_ok()
        );
    }
}
