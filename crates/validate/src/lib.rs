//! `plexus validate`: scenarios with load, faults and assertions, and reports in which
//! every figure was measured in that run.
//!
//! A [`Scenario`] (TOML; `docs/validate.md`) names the node's configuration, the
//! services to start (a test service whose faults can be switched on), fault proxies
//! in front of real servers, load profiles in the open or closed model (over HTTP or
//! WebSocket sessions), faults at given times, and assertions. [`run`] starts it all on loopback, drives the load
//! (latency from the intended send time, HDR histograms, the generator's own
//! saturation detected), applies the faults on time, samples `/metrics`, checks the
//! assertions and returns a [`Report`] that writes itself as JSON, Markdown and one
//! HTML file with inline SVG charts.
//!
//! ```no_run
//! let scenario = plexus_validate::Scenario::load("seed-001")?;
//! let report = plexus_validate::run(scenario, &plexus_validate::Options::default())?;
//! report.write(std::path::Path::new("validate-report"))?;
//! assert!(report.passed);
//! # Ok::<(), plexus_validate::ValidateError>(())
//! ```
//!
//! Modules: [`scenario`] (the file format), [`load`] (the generator), [`faults`]
//! (faults on time), [`testsvc`] (the test service), [`probe`] (`/metrics`),
//! [`assertions`], [`report`] and [`html`], [`compare`] (`--compare`), [`repeat`]
//! (`--repeat`), [`process`] (process services), [`writes`] (`no_lost_writes`),
//! [`env`](mod@env) (the machine).

pub mod assertions;
pub mod compare;
pub mod env;
mod error;
pub mod faults;
pub mod html;
pub mod load;
pub mod probe;
pub mod process;
pub mod repeat;
pub mod report;
mod run;
pub mod scenario;
pub mod testsvc;
pub mod writes;

pub use error::ValidateError;
pub use repeat::{Repeated, run_repeated};
pub use report::Report;
pub use run::{Options, run, run_async};
pub use scenario::Scenario;
