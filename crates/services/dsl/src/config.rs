//! The family's configuration section, `[dsl]`: how large a program may be (bytes,
//! nesting, calls), how long it may run, how many compiled schemas are kept, and
//! how `dsl.ask` asks a model for a program (which model, how large the request and
//! the prompt may be, whether a refused program is sent back once for a repair).
//! Read and checked so that a problem is named by its full path
//! (`dsl.max_calls`); without the section these defaults hold.

use std::time::Duration;

use plexus_config::{FieldErrors, Validate};
use serde::{Deserialize, Serialize};

use crate::Limits;

/// The section the family reads.
pub const SECTION: &str = "dsl";

/// `[dsl]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DslConfig {
    /// Run the `dsl` service (default true).
    pub enabled: bool,
    /// The longest program, in bytes (default 1 MiB); longer is refused as
    /// `too_large` before it is read.
    pub max_source_bytes: usize,
    /// The deepest nesting of brackets (default 64).
    pub max_depth: usize,
    /// The most calls one program may make, each `(transaction ...)` counting its
    /// operations (default 1,000).
    pub max_calls: usize,
    /// The longest a program may run, in milliseconds (default 30,000); the
    /// caller's own deadline ends it sooner.
    pub max_duration_ms: u64,
    /// How many methods' compiled params schemas are kept (default 1,024).
    pub schema_cache_entries: usize,
    /// The model (an `[inference.models]` alias or `provider/model`) `dsl.ask`
    /// asks when the caller names none (default `"default"`).
    pub ask_model: String,
    /// The longest request `dsl.ask` takes, in bytes (default 4,096).
    pub ask_max_request_bytes: usize,
    /// The most bytes of verbs and schemas shown to the model (default 64 KiB);
    /// verbs beyond it are left out of the prompt, and counted.
    pub ask_max_prompt_bytes: usize,
    /// Send a program that fails its check back to the model once, with its
    /// errors, for a repair (default true); a caller may say otherwise per request.
    pub ask_repair: bool,
}

impl Default for DslConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_source_bytes: 1 << 20,
            max_depth: 64,
            max_calls: 1_000,
            max_duration_ms: 30_000,
            schema_cache_entries: 1_024,
            ask_model: "default".to_owned(),
            ask_max_request_bytes: 4_096,
            ask_max_prompt_bytes: 64 * 1_024,
            ask_repair: true,
        }
    }
}

impl DslConfig {
    /// The reader's limits.
    pub fn limits(&self) -> Limits {
        Limits {
            max_bytes: self.max_source_bytes,
            max_depth: self.max_depth,
        }
    }

    /// [`Self::max_duration_ms`] as a duration.
    pub fn max_duration(&self) -> Duration {
        Duration::from_millis(self.max_duration_ms)
    }
}

impl Validate for DslConfig {
    fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        errors
            .range("max_source_bytes", self.max_source_bytes, 1..=1 << 26)
            .range("max_depth", self.max_depth, 1..=1_000)
            .range("max_calls", self.max_calls, 1..=1_000_000)
            .range("max_duration_ms", self.max_duration_ms, 1..=3_600_000)
            .range(
                "schema_cache_entries",
                self.schema_cache_entries,
                1..=1_000_000,
            )
            .range(
                "ask_max_request_bytes",
                self.ask_max_request_bytes,
                1..=1 << 20,
            )
            .range(
                "ask_max_prompt_bytes",
                self.ask_max_prompt_bytes,
                256..=1 << 24,
            );
        if self.ask_model.trim().is_empty() {
            errors.push("ask_model", "must name a model or an alias");
        }
        errors.into_result()
    }
}
