//! WKP-1 persistence of the server's database: settings from the environment, and the agent
//! that restores on boot, persists on a schedule and flushes on shutdown.

pub mod agent;
pub mod config;
pub mod marker;

pub use agent::{Agent, BootReport, Layout, PersistError, Pushed, Status};
pub use config::{ConfigError, PersistConfig, PersistMode, RestoreOnBoot};
