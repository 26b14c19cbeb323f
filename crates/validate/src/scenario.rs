//! Scenario files: what to start, what load to drive, which faults to inject when,
//! and what must hold. TOML, checked field by field before anything starts; see
//! `docs/validate.md` for the format with examples.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ValidateError;

/// The built-in scenarios, shipped in the binary: `(name, TOML)`.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("seed-001", include_str!("../scenarios/seed-001.toml")),
    ("seed-002", include_str!("../scenarios/seed-002.toml")),
];

/// One scenario.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Its name, for the report.
    pub name: String,
    /// What it shows, for the report.
    #[serde(default)]
    pub description: String,
    /// How long the run lasts, in seconds (loads and faults fit inside).
    pub duration_s: f64,
    /// The first seconds of every load, sent but left out of its figures.
    #[serde(default)]
    pub warmup_s: f64,
    /// With `--quick`, every time in the scenario is multiplied by this (0 < x ≤ 1).
    #[serde(default = "default_quick_scale")]
    pub quick_scale: f64,
    /// The node's configuration: exactly what `plexus serve --config` takes. String
    /// values may name a proxy's address as `${proxy.NAME}`. The gateway always binds
    /// a free port on 127.0.0.1 and the data folder is the run's own.
    #[serde(default)]
    pub config: toml::Table,
    /// Services started beside the configured ones.
    #[serde(default)]
    pub services: Vec<ServiceSpec>,
    /// Calls made once, in order, when everything has started and before the clock
    /// does (`datastore.create_collection` for a write load); one that fails stops
    /// the run. `${run}` in their params is the run's own token.
    #[serde(default)]
    pub setup: Vec<CallSpec>,
    /// Fault proxies, each in front of one upstream on loopback.
    #[serde(default)]
    pub proxies: Vec<ProxySpec>,
    /// The load profiles, run side by side.
    #[serde(default)]
    pub loads: Vec<LoadSpec>,
    /// The faults, at their times.
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
    /// What must hold.
    #[serde(default)]
    pub assertions: Vec<AssertionSpec>,
}

fn default_quick_scale() -> f64 {
    0.5
}

/// A service the harness starts in the node.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServiceSpec {
    /// The test service (`NAME.work`, `NAME.echo`): answers at once unless a fault says
    /// otherwise; faults target it as `service:NAME`.
    Test {
        /// The service name.
        name: String,
        /// How many instances (each with its own breaker).
        #[serde(default = "one")]
        instances: usize,
    },
    /// A built-in service the configuration starts; the harness checks it is there.
    BuiltIn {
        /// The service name (`datastore`, `cache`, …).
        name: String,
    },
    /// An external command, started once the gateway listens and killed (and
    /// reaped) when the run ends; faults target it as `process:NAME`. In `argv` and
    /// `env` values, `${gateway_url}` (`http://127.0.0.1:PORT`) and `${ws_url}`
    /// (`ws://127.0.0.1:PORT/ws`) name the node, so the process can register as an
    /// external service over `/ws`. The run starts once `service` has a registered
    /// instance.
    Process {
        /// The process's name, for faults and the report.
        name: String,
        /// The program and its arguments (a relative program or path is looked up
        /// from the directory `plexus validate` runs in).
        argv: Vec<String>,
        /// Environment variables set for it, beside the inherited ones.
        #[serde(default)]
        env: BTreeMap<String, String>,
        /// The service it registers (default: `name`); the harness waits for an
        /// instance of it before the clock starts, and again after a restart.
        #[serde(default)]
        service: Option<String>,
        /// How long it may take to register, in seconds.
        #[serde(default = "default_ready_s")]
        ready_within_s: f64,
    },
}

fn default_ready_s() -> f64 {
    10.0
}

impl ServiceSpec {
    /// The name the scenario gives it.
    pub fn name(&self) -> &str {
        match self {
            ServiceSpec::Test { name, .. }
            | ServiceSpec::BuiltIn { name }
            | ServiceSpec::Process { name, .. } => name,
        }
    }

    /// The service the node knows it by (a process's `service`, else its name).
    pub fn service(&self) -> &str {
        match self {
            ServiceSpec::Process {
                service: Some(s), ..
            } => s,
            other => other.name(),
        }
    }
}

fn one() -> usize {
    1
}

/// A fault proxy in front of an upstream.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxySpec {
    /// Its name: faults target it as `proxy:NAME`, the configuration names its
    /// address as `${proxy.NAME}`.
    pub name: String,
    /// The upstream, on loopback (`127.0.0.1:5432`).
    #[serde(default)]
    pub upstream: Option<SocketAddr>,
    /// Or the environment variable holding a URL whose host and port are the upstream
    /// (`PLEXUS_TEST_POSTGRES_URL`); when it is unset the proxy, and every load, fault
    /// and assertion that needs it, is skipped and the report says so.
    #[serde(default)]
    pub upstream_env: Option<String>,
    /// Configuration merged over the scenario's when the proxy runs (and left out
    /// when it is skipped): where `${proxy.NAME}` (its address) and
    /// `${proxy_url.NAME}` (the URL of `upstream_env` with the proxy's address) go.
    #[serde(default)]
    pub config: toml::Table,
}

/// What a load sends.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Target {
    /// A JSON-RPC call over `POST /rpc`.
    Call {
        /// `service.method`.
        call: String,
        /// Its params.
        #[serde(default)]
        params: Value,
    },
    /// An event, through `plexus.publish` over `POST /rpc`.
    Publish {
        /// The topic.
        publish: String,
        /// The payload.
        #[serde(default)]
        payload: Value,
    },
}

impl Target {
    /// The JSON-RPC request body.
    pub fn body(&self) -> Value {
        match self {
            Target::Call { call, params } => {
                // JSON-RPC params are an object or an array: none is `{}`.
                let params = if params.is_null() {
                    serde_json::json!({})
                } else {
                    params.clone()
                };
                serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": call, "params": params})
            }
            Target::Publish { publish, payload } => serde_json::json!({
                "jsonrpc": "2.0", "id": 1, "method": "plexus.publish",
                "params": {"topic": publish, "payload": payload}
            }),
        }
    }

    /// A short label for the report.
    pub fn label(&self) -> String {
        match self {
            Target::Call { call, .. } => format!("call {call}"),
            Target::Publish { publish, .. } => format!("publish {publish}"),
        }
    }

    /// The service a call goes to, if it is a call.
    pub fn service(&self) -> Option<&str> {
        match self {
            Target::Call { call, .. } => call.split_once('.').map(|(s, _)| s),
            Target::Publish { .. } => None,
        }
    }
}

/// The arrival model of a load.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case", deny_unknown_fields)]
pub enum Model {
    /// Requests start on a schedule whatever the answers do (k6's arrival rate,
    /// wrk2): `rate` per second, ramping linearly to `rate_to` when set.
    Open {
        /// Requests per second at the start.
        rate: f64,
        /// Requests per second at the end (a ramp).
        #[serde(default)]
        rate_to: Option<f64>,
        /// The most requests in flight; a request due when that many are out is
        /// dropped (counted) and marks the generator saturated.
        #[serde(default = "default_in_flight")]
        max_in_flight: usize,
    },
    /// `clients` clients, each sending its next request when the last is answered.
    Closed {
        /// How many.
        clients: usize,
    },
}

fn default_in_flight() -> usize {
    2000
}

/// One load profile.
// Not `deny_unknown_fields`: serde refuses it beside `flatten`; the flattened
// model refuses the unknown fields instead.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoadSpec {
    /// Its name, for assertions.
    pub name: String,
    /// What it sends.
    pub target: Target,
    /// How requests arrive.
    #[serde(flatten)]
    pub model: Model,
    /// When it starts, in scenario seconds.
    #[serde(default)]
    pub start_s: f64,
    /// How long it runs (default: to the end of the scenario).
    #[serde(default)]
    pub duration_s: Option<f64>,
    /// A request unanswered after this is counted as timed out.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How its requests travel: `"http"` (`POST /rpc`, the default) or `"ws"`
    /// (long-lived WebSocket sessions to `/ws`, opened before the clock starts).
    #[serde(default)]
    pub transport: Transport,
    /// With `transport = "ws"`, how many sessions (1 to [`MAX_SESSIONS`]; default 1 in
    /// the open model, which sends over them round-robin, and one per client in the
    /// closed model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<usize>,
}

fn default_timeout_ms() -> u64 {
    2000
}

/// The most WebSocket sessions one load opens.
pub const MAX_SESSIONS: usize = 1000;

/// How a load's requests travel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// One `POST /rpc` per request.
    #[default]
    Http,
    /// JSON-RPC over WebSocket sessions to `/ws`, answers matched by id.
    Ws,
}

impl LoadSpec {
    /// The WebSocket sessions the load opens: none over HTTP, one per client in the
    /// closed model, else `sessions` (default 1).
    pub fn ws_sessions(&self) -> Option<usize> {
        match (self.transport, &self.model) {
            (Transport::Http, _) => None,
            (Transport::Ws, Model::Closed { clients }) => Some(*clients),
            (Transport::Ws, Model::Open { .. }) => Some(self.sessions.unwrap_or(1)),
        }
    }
}

/// A fault at a given time.
// Unknown fields are refused by the flattened kind.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FaultSpec {
    /// Its name, for assertions.
    pub name: String,
    /// `service:NAME` (the test service), `proxy:NAME` or `process:NAME`.
    pub target: String,
    /// When it starts, in scenario seconds.
    pub at_s: f64,
    /// How long it lasts.
    pub duration_s: f64,
    /// What it does.
    #[serde(flatten)]
    pub kind: FaultKind,
}

/// What a fault does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultKind {
    /// The test service fails this share of calls (0..=1) with a transient error.
    ErrorRate {
        /// The share.
        rate: f64,
    },
    /// The test service answers `ms` later.
    Latency {
        /// The delay.
        ms: u64,
        /// Up to this much more or less (toxic on a proxy only).
        #[serde(default)]
        jitter_ms: u64,
    },
    /// The test service never answers.
    Hang,
    /// The test service answers "unavailable".
    Unavailable,
    /// The test service panics in its handler.
    Panic,
    /// Proxy: connections are reset.
    Reset,
    /// Proxy: nothing forwarded, connections kept.
    Blackhole,
    /// Proxy: at most this many bytes per second.
    Bandwidth {
        /// The rate.
        bytes_per_second: u64,
    },
    /// Proxy: chunks cut into slices.
    Slicer {
        /// The slice size.
        bytes: usize,
        /// The pause between slices.
        #[serde(default)]
        delay_us: u64,
    },
    /// Proxy: nothing forwarded, connections closed after `ms`.
    Timeout {
        /// How long they hang first.
        ms: u64,
    },
    /// Proxy: the upstream goes away (connections cut, new ones refused).
    Down,
    /// Process: SIGKILL at `at_s`; with `restart`, started again (same command) at
    /// the end of the window.
    Kill {
        /// Start it again at `at_s + duration_s`.
        #[serde(default)]
        restart: bool,
    },
    /// Process: SIGSTOP at `at_s`, SIGCONT at `at_s + duration_s`.
    Stop,
}

impl FaultKind {
    fn for_service(&self) -> bool {
        matches!(
            self,
            FaultKind::ErrorRate { .. }
                | FaultKind::Latency { .. }
                | FaultKind::Hang
                | FaultKind::Unavailable
                | FaultKind::Panic
        )
    }

    fn for_proxy(&self) -> bool {
        !matches!(
            self,
            FaultKind::ErrorRate { .. }
                | FaultKind::Hang
                | FaultKind::Unavailable
                | FaultKind::Panic
        ) && !self.for_process()
    }

    fn for_process(&self) -> bool {
        matches!(self, FaultKind::Kill { .. } | FaultKind::Stop)
    }
}

/// One JSON-RPC call: a setup call, or the read of one write (`datastore.get`,
/// params naming `${seq}`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallSpec {
    /// `service.method`.
    pub call: String,
    /// Its params.
    #[serde(default)]
    pub params: Value,
}

impl CallSpec {
    /// The JSON-RPC request body.
    pub fn body(&self) -> Value {
        Target::Call {
            call: self.call.clone(),
            params: self.params.clone(),
        }
        .body()
    }
}

/// Which requests of a load an assertion looks at: by their intended send time.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// From this scenario second (default: the end of the warm-up).
    #[serde(default)]
    pub from_s: Option<f64>,
    /// To this one (default: the end).
    #[serde(default)]
    pub to_s: Option<f64>,
}

/// What must hold.
#[derive(Clone, Debug, Serialize, Deserialize)]
// Unknown fields of the windowed kinds are refused by the flattened window.
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AssertionSpec {
    /// A latency percentile of a load (from the intended send time) is at most `max_ms`.
    /// Fails when the generator could not hold the rate in the window.
    Latency {
        /// The load.
        load: String,
        /// The percentile (99.9).
        percentile: f64,
        /// The bound.
        max_ms: f64,
        /// The requests looked at.
        #[serde(flatten)]
        window: Window,
    },
    /// The share of a load's requests that failed or timed out is within bounds.
    ErrorRate {
        /// The load.
        load: String,
        /// At least this share (to check a fault had its effect).
        #[serde(default)]
        min: Option<f64>,
        /// At most this share.
        #[serde(default)]
        max: Option<f64>,
        /// The requests looked at.
        #[serde(flatten)]
        window: Window,
    },
    /// A load's answered-ok requests per second are at least `min_per_s`.
    Throughput {
        /// The load.
        load: String,
        /// The bound.
        min_per_s: f64,
        /// The requests looked at.
        #[serde(flatten)]
        window: Window,
    },
    /// A breaker of `service` opens within `opens_within_s` of the fault's start and
    /// every breaker of it is closed again within `closes_within_s` of its end (read
    /// from `/metrics` every 50 ms).
    Breaker {
        /// The service.
        service: String,
        /// The fault.
        fault: String,
        /// The bound on opening.
        opens_within_s: f64,
        /// The bound on closing.
        closes_within_s: f64,
    },
    /// A health component's status, read from `/health` every 50 ms, goes through
    /// `sequence` in order: the observed statuses, with repeats merged (and
    /// `unknown` samples, a component not checked yet, left out unless `sequence`
    /// names `unknown`), equal `sequence` exactly.
    Health {
        /// The component (`database`, an instance id, …).
        component: String,
        /// The statuses, in order (`["healthy", "unhealthy", "healthy"]`).
        sequence: Vec<String>,
        /// The fault it is about: skipped when that fault is (its proxy did not run).
        #[serde(default)]
        fault: Option<String>,
    },
    /// No acknowledged write lost: after the run, every request of `load` (whose
    /// params name `${seq}`, so each writes its own id) that was answered ok is
    /// read back with `read` (naming the same `${seq}`); a read whose result is null
    /// is a lost write. Passes when none is lost and every read succeeded.
    NoLostWrites {
        /// The write load.
        load: String,
        /// The read of one write.
        read: CallSpec,
    },
    /// A sum of `/metrics` series read at the end: within bounds, or equal to a count
    /// the harness kept itself (`equals = "LOAD.ok"`, `LOAD.failed`, `LOAD.sent`;
    /// warm-up included, as the node counts everything).
    Metric {
        /// The metric (`plexus_calls_total`).
        name: String,
        /// The labels a series must have (`{service = "flaky", outcome = "ok"}`).
        #[serde(default)]
        labels: BTreeMap<String, String>,
        /// At least.
        #[serde(default)]
        min: Option<f64>,
        /// At most.
        #[serde(default)]
        max: Option<f64>,
        /// Exactly this count of the harness.
        #[serde(default)]
        equals: Option<String>,
    },
}

impl Scenario {
    /// Reads a scenario: a built-in name (`seed-001`, `seed-002`) or a file.
    pub fn load(name_or_path: &str) -> Result<Self, ValidateError> {
        if let Some((name, text)) = BUILT_IN.iter().find(|(n, _)| *n == name_or_path) {
            return Self::parse(name, text);
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            return Err(ValidateError::Unknown(name_or_path.to_owned()));
        }
        let text = std::fs::read_to_string(path).map_err(|source| ValidateError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(name_or_path, &text)
    }

    /// Parses and checks a scenario; `origin` names it in errors.
    pub fn parse(origin: &str, text: &str) -> Result<Self, ValidateError> {
        let de = toml::Deserializer::parse(text)
            .map_err(|e| ValidateError::scenario(origin, "(toml)", e.message()))?;
        let scenario: Scenario = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            ValidateError::scenario(origin, path, e.inner().message())
        })?;
        scenario
            .check()
            .map_err(|(path, reason)| ValidateError::scenario(origin, path, reason))?;
        Ok(scenario)
    }

    /// The scenario with every time multiplied by `quick_scale`.
    pub fn quick(mut self) -> Self {
        let k = self.quick_scale;
        self.duration_s *= k;
        self.warmup_s *= k;
        for l in &mut self.loads {
            l.start_s *= k;
            l.duration_s = l.duration_s.map(|d| d * k);
        }
        for f in &mut self.faults {
            f.at_s *= k;
            f.duration_s *= k;
        }
        for a in &mut self.assertions {
            if let AssertionSpec::Latency { window, .. }
            | AssertionSpec::ErrorRate { window, .. }
            | AssertionSpec::Throughput { window, .. } = a
            {
                window.from_s = window.from_s.map(|s| s * k);
                window.to_s = window.to_s.map(|s| s * k);
            }
        }
        self
    }

    /// The end of a load, in scenario seconds.
    pub fn load_end(&self, load: &LoadSpec) -> f64 {
        load.duration_s
            .map_or(self.duration_s, |d| (load.start_s + d).min(self.duration_s))
    }

    /// Checks what serde cannot: ranges, names, references. Errors name the field.
    fn check(&self) -> Result<(), (String, String)> {
        let err = |path: String, reason: &str| Err((path, reason.to_owned()));
        let seconds = |path: String, v: f64, max: f64| {
            if !v.is_finite() || v < 0.0 || v > max {
                Err((path, format!("must be a number of seconds from 0 to {max}")))
            } else {
                Ok(())
            }
        };
        if self.name.trim().is_empty() {
            return err("name".into(), "must not be empty");
        }
        seconds("duration_s".into(), self.duration_s, 3600.0)?;
        if self.duration_s <= 0.0 {
            return err("duration_s".into(), "must be positive");
        }
        seconds("warmup_s".into(), self.warmup_s, self.duration_s)?;
        if !(self.quick_scale > 0.0 && self.quick_scale <= 1.0) {
            return err("quick_scale".into(), "must be in (0, 1]");
        }
        let mut services = BTreeSet::new();
        let mut test_services = BTreeSet::new();
        let mut processes = BTreeSet::new();
        for (i, s) in self.services.iter().enumerate() {
            let (name, test) = match s {
                ServiceSpec::Test { name, instances } => {
                    if !(1..=16).contains(instances) {
                        return err(format!("services[{i}].instances"), "must be 1 to 16");
                    }
                    (name, true)
                }
                ServiceSpec::BuiltIn { name } => (name, false),
                ServiceSpec::Process {
                    name,
                    argv,
                    env,
                    service,
                    ready_within_s,
                } => {
                    if argv.first().is_none_or(|p| p.trim().is_empty()) {
                        return err(
                            format!("services[{i}].argv"),
                            "the program and its arguments: at least the program",
                        );
                    }
                    if env.keys().any(|k| k.is_empty() || k.contains(['=', '\0'])) {
                        return err(
                            format!("services[{i}].env"),
                            "variable names must be non-empty, without '=' or NUL",
                        );
                    }
                    if service.as_deref().is_some_and(|s| !valid_name(s)) {
                        return err(
                            format!("services[{i}].service"),
                            "letters, digits, '-' and '_'",
                        );
                    }
                    seconds(
                        format!("services[{i}].ready_within_s"),
                        *ready_within_s,
                        600.0,
                    )?;
                    processes.insert(name.clone());
                    if let Some(service) = service
                        && service != name
                        && !services.insert(service.clone())
                    {
                        return err(
                            format!("services[{i}].service"),
                            "a service of that name is already listed",
                        );
                    }
                    (name, false)
                }
            };
            if !valid_name(name) {
                return err(
                    format!("services[{i}].name"),
                    "letters, digits, '-' and '_'",
                );
            }
            if !services.insert(name.clone()) {
                return err(
                    format!("services[{i}].name"),
                    "a service of that name is already listed",
                );
            }
            if test {
                test_services.insert(name.clone());
            }
        }
        for (i, c) in self.setup.iter().enumerate() {
            if c.call
                .split_once('.')
                .is_none_or(|(s, m)| s.is_empty() || m.is_empty())
            {
                return err(format!("setup[{i}].call"), "must be `service.method`");
            }
        }
        let mut proxies = BTreeSet::new();
        for (i, p) in self.proxies.iter().enumerate() {
            if !valid_name(&p.name) || !proxies.insert(p.name.clone()) {
                return err(
                    format!("proxies[{i}].name"),
                    "a unique name of letters, digits, '-' and '_'",
                );
            }
            match (&p.upstream, &p.upstream_env) {
                (Some(addr), None) if addr.ip().is_loopback() => {}
                (Some(_), None) => {
                    return err(
                        format!("proxies[{i}].upstream"),
                        "must be on loopback (127.0.0.1)",
                    );
                }
                (None, Some(_)) => {}
                _ => {
                    return err(
                        format!("proxies[{i}]"),
                        "set exactly one of upstream and upstream_env",
                    );
                }
            }
        }
        let mut loads = BTreeSet::new();
        for (i, l) in self.loads.iter().enumerate() {
            let at = |f: &str| format!("loads[{i}].{f}");
            if !valid_name(&l.name) || !loads.insert(l.name.clone()) {
                return err(at("name"), "a unique name of letters, digits, '-' and '_'");
            }
            seconds(at("start_s"), l.start_s, self.duration_s)?;
            if let Some(d) = l.duration_s {
                seconds(at("duration_s"), d, self.duration_s)?;
            }
            if self.load_end(l) <= l.start_s {
                return err(
                    at("duration_s"),
                    "the load must run for some time inside the scenario",
                );
            }
            if !(1..=600_000).contains(&l.timeout_ms) {
                return err(at("timeout_ms"), "must be 1 to 600000");
            }
            match &l.model {
                Model::Open {
                    rate,
                    rate_to,
                    max_in_flight,
                } => {
                    for (f, r) in [("rate", Some(*rate)), ("rate_to", *rate_to)] {
                        if let Some(r) = r
                            && !(r.is_finite() && r > 0.0 && r <= 1_000_000.0)
                        {
                            return err(at(f), "must be a rate from above 0 to 1000000 per second");
                        }
                    }
                    if !(1..=100_000).contains(max_in_flight) {
                        return err(at("max_in_flight"), "must be 1 to 100000");
                    }
                }
                Model::Closed { clients } => {
                    if !(1..=10_000).contains(clients) {
                        return err(at("clients"), "must be 1 to 10000");
                    }
                }
            }
            match (l.transport, l.sessions, &l.model) {
                (Transport::Http, Some(_), _) => {
                    return err(at("sessions"), "applies to transport = \"ws\" only");
                }
                (_, Some(n), _) if !(1..=MAX_SESSIONS).contains(&n) => {
                    return Err((
                        at("sessions"),
                        format!("must be 1 to {MAX_SESSIONS} WebSocket sessions"),
                    ));
                }
                (Transport::Ws, Some(n), Model::Closed { clients }) if n != *clients => {
                    return err(
                        at("sessions"),
                        "a closed-model ws load opens one session per client: leave it out or make it equal to clients",
                    );
                }
                (Transport::Ws, None, Model::Closed { clients }) if *clients > MAX_SESSIONS => {
                    return Err((
                        at("clients"),
                        format!(
                            "a closed-model ws load opens one session per client: at most {MAX_SESSIONS}"
                        ),
                    ));
                }
                _ => {}
            }
            if let Target::Call { call, .. } = &l.target
                && call
                    .split_once('.')
                    .is_none_or(|(s, m)| s.is_empty() || m.is_empty())
            {
                return err(at("target.call"), "must be `service.method`");
            }
        }
        let mut faults = BTreeMap::new();
        for (i, f) in self.faults.iter().enumerate() {
            let at = |field: &str| format!("faults[{i}].{field}");
            if !valid_name(&f.name) || faults.insert(f.name.clone(), f).is_some() {
                return err(at("name"), "a unique name of letters, digits, '-' and '_'");
            }
            seconds(at("at_s"), f.at_s, self.duration_s)?;
            seconds(at("duration_s"), f.duration_s, self.duration_s)?;
            if f.at_s + f.duration_s > self.duration_s {
                return err(at("duration_s"), "the fault must end inside the scenario");
            }
            let kind_error = match f.target.split_once(':') {
                Some(("service", s)) if test_services.contains(s) => (!f.kind.for_service())
                    .then_some("this kind does not apply to the test service"),
                Some(("proxy", p)) if proxies.contains(p) => {
                    (!f.kind.for_proxy()).then_some("this kind does not apply to a proxy")
                }
                Some(("process", p)) if processes.contains(p) => {
                    (!f.kind.for_process()).then_some("a process takes `kill` or `stop`")
                }
                _ => {
                    return err(
                        at("target"),
                        "must be `service:NAME` of a test service, `proxy:NAME` of a listed proxy or `process:NAME` of a process service",
                    );
                }
            };
            if let Some(reason) = kind_error {
                let applies = if f.kind.for_process() {
                    "(`kill` and `stop` apply to a process)"
                } else if f.kind.for_service() && f.kind.for_proxy() {
                    "(it applies to the test service or a proxy)"
                } else if f.kind.for_service() {
                    "(it applies to the test service)"
                } else {
                    "(it applies to a proxy)"
                };
                return Err((at("kind"), format!("{reason} {applies}")));
            }
            if let FaultKind::ErrorRate { rate } = f.kind
                && !(0.0..=1.0).contains(&rate)
            {
                return err(at("rate"), "must be from 0 to 1");
            }
            let toxic = crate::faults::toxic(&f.kind);
            if let Some(Err(e)) = toxic.map(|t| t.validate()) {
                return Err((at(e.field), e.reason.to_owned()));
            }
        }
        for (i, a) in self.assertions.iter().enumerate() {
            let at = |field: &str| format!("assertions[{i}].{field}");
            let known_load = |l: &str| -> Result<(), (String, String)> {
                if loads.contains(l) {
                    Ok(())
                } else {
                    err(at("load"), "no load of that name")
                }
            };
            let window = |w: &Window| -> Result<(), (String, String)> {
                for (f, v) in [("from_s", w.from_s), ("to_s", w.to_s)] {
                    if let Some(v) = v {
                        seconds(at(f), v, self.duration_s)?;
                    }
                }
                if let (Some(a), Some(b)) = (w.from_s, w.to_s)
                    && b <= a
                {
                    return err(at("to_s"), "must be after from_s");
                }
                Ok(())
            };
            match a {
                AssertionSpec::Latency {
                    load,
                    percentile,
                    max_ms,
                    window: w,
                } => {
                    known_load(load)?;
                    window(w)?;
                    if !(*percentile > 0.0 && *percentile <= 100.0) {
                        return err(at("percentile"), "must be in (0, 100]");
                    }
                    if !(max_ms.is_finite() && *max_ms > 0.0) {
                        return err(at("max_ms"), "must be positive");
                    }
                }
                AssertionSpec::ErrorRate {
                    load,
                    min,
                    max,
                    window: w,
                } => {
                    known_load(load)?;
                    window(w)?;
                    if min.is_none() && max.is_none() {
                        return err(at("max"), "set min, max or both");
                    }
                    for (f, v) in [("min", min), ("max", max)] {
                        if let Some(v) = v
                            && !(0.0..=1.0).contains(v)
                        {
                            return err(at(f), "a share from 0 to 1");
                        }
                    }
                }
                AssertionSpec::Throughput {
                    load,
                    min_per_s,
                    window: w,
                } => {
                    known_load(load)?;
                    window(w)?;
                    if !(min_per_s.is_finite() && *min_per_s >= 0.0) {
                        return err(at("min_per_s"), "must be a rate of 0 or more");
                    }
                }
                AssertionSpec::Breaker {
                    service,
                    fault,
                    opens_within_s,
                    closes_within_s,
                } => {
                    if !services.contains(service) {
                        return err(at("service"), "no listed service of that name");
                    }
                    if !faults.contains_key(fault) {
                        return err(at("fault"), "no fault of that name");
                    }
                    seconds(at("opens_within_s"), *opens_within_s, self.duration_s)?;
                    seconds(at("closes_within_s"), *closes_within_s, self.duration_s)?;
                }
                AssertionSpec::Health {
                    component,
                    sequence,
                    fault,
                } => {
                    if component.trim().is_empty() {
                        return err(at("component"), "must not be empty");
                    }
                    if sequence.is_empty() {
                        return err(at("sequence"), "at least one status");
                    }
                    for (j, status) in sequence.iter().enumerate() {
                        if !HEALTH_STATUSES.contains(&status.as_str()) {
                            return err(
                                format!("assertions[{i}].sequence[{j}]"),
                                "one of unknown, healthy, degraded, unhealthy",
                            );
                        }
                        if j > 0 && sequence[j - 1] == *status {
                            return err(
                                format!("assertions[{i}].sequence[{j}]"),
                                "repeats the status before it: list transitions",
                            );
                        }
                    }
                    if let Some(fault) = fault
                        && !faults.contains_key(fault)
                    {
                        return err(at("fault"), "no fault of that name");
                    }
                }
                AssertionSpec::NoLostWrites { load, read } => {
                    known_load(load)?;
                    let numbered = self.loads.iter().any(|l| {
                        &l.name == load
                            && matches!(l.target, Target::Call { .. })
                            && l.target.body().to_string().contains(crate::load::SEQ)
                    });
                    if !numbered {
                        return err(
                            at("load"),
                            "must be a call load whose params name ${seq}, so each write has its own id",
                        );
                    }
                    if read
                        .call
                        .split_once('.')
                        .is_none_or(|(s, m)| s.is_empty() || m.is_empty())
                    {
                        return err(at("read.call"), "must be `service.method`");
                    }
                    if !read.body().to_string().contains(crate::load::SEQ) {
                        return err(
                            at("read.params"),
                            "must name ${seq}, the write's sequence number",
                        );
                    }
                }
                AssertionSpec::Metric {
                    name,
                    min,
                    max,
                    equals,
                    ..
                } => {
                    if name.is_empty()
                        || !name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                    {
                        return err(at("name"), "a Prometheus metric name");
                    }
                    if min.is_none() && max.is_none() && equals.is_none() {
                        return err(at("equals"), "set min, max or equals");
                    }
                    if let Some(e) = equals {
                        match e.rsplit_once('.') {
                            Some((l, "ok" | "failed" | "sent")) => known_load(l)?,
                            _ => {
                                return err(
                                    at("equals"),
                                    "must be `LOAD.ok`, `LOAD.failed` or `LOAD.sent`",
                                );
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// The statuses a health component can have.
pub const HEALTH_STATUSES: &[&str] = &["unknown", "healthy", "degraded", "unhealthy"];

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "t"
duration_s = 4
[[services]]
kind = "test"
name = "flaky"
[[loads]]
name = "steady"
target = { call = "flaky.work" }
model = "open"
rate = 100
"#;

    fn error_of(extra: &str) -> String {
        Scenario::parse("t.toml", &format!("{MINIMAL}{extra}"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_built_in_scenarios_parse() {
        for (name, _) in BUILT_IN {
            let s = Scenario::load(name).unwrap();
            assert!(!s.assertions.is_empty(), "{name}");
        }
    }

    #[test]
    fn a_minimal_scenario_parses_with_defaults() {
        let s = Scenario::parse("t", MINIMAL).unwrap();
        assert_eq!(s.loads[0].timeout_ms, 2000);
        assert!(matches!(
            s.loads[0].model,
            Model::Open {
                max_in_flight: 2000,
                ..
            }
        ));
        let q = s.quick();
        assert_eq!(q.duration_s, 2.0);
    }

    #[test]
    fn errors_name_the_field() {
        let e = error_of(
            "[[faults]]\nname = \"f\"\ntarget = \"service:nope\"\nat_s = 1\nduration_s = 1\nkind = \"hang\"\n",
        );
        assert!(e.contains("faults[0].target"), "{e}");
        let e = error_of(
            "[[faults]]\nname = \"f\"\ntarget = \"service:flaky\"\nat_s = 3\nduration_s = 2\nkind = \"hang\"\n",
        );
        assert!(e.contains("faults[0].duration_s"), "{e}");
        let e = error_of(
            "[[assertions]]\nkind = \"latency\"\nload = \"other\"\npercentile = 99\nmax_ms = 5\n",
        );
        assert!(e.contains("assertions[0].load"), "{e}");
        let e = error_of(
            "[[faults]]\nname = \"f\"\ntarget = \"service:flaky\"\nat_s = 1\nduration_s = 1\nkind = \"reset\"\n",
        );
        assert!(e.contains("applies to a proxy"), "{e}");
        let e = error_of("[[proxies]]\nname = \"db\"\nupstream = \"10.0.0.1:5432\"\n");
        assert!(e.contains("loopback"), "{e}");
        let e = Scenario::parse("t.toml", &MINIMAL.replace("rate = 100", "rate = -1"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("loads[0].rate"), "{e}");
        let process =
            "[[services]]\nkind = \"process\"\nname = \"worker\"\nargv = [\"python3\", \"w.py\"]\n";
        let e = error_of(&format!(
            "{process}[[faults]]\nname = \"f\"\ntarget = \"process:nope\"\nat_s = 1\nduration_s = 1\nkind = \"kill\"\n"
        ));
        assert!(e.contains("faults[0].target"), "{e}");
        let e = error_of(&format!(
            "{process}[[faults]]\nname = \"f\"\ntarget = \"process:worker\"\nat_s = 1\nduration_s = 1\nkind = \"hang\"\n"
        ));
        assert!(e.contains("faults[0].kind"), "{e}");
        let e = error_of(
            "[[faults]]\nname = \"f\"\ntarget = \"service:flaky\"\nat_s = 1\nduration_s = 1\nkind = \"stop\"\n",
        );
        assert!(
            e.contains("faults[0].kind") && e.contains("apply to a process"),
            "{e}"
        );
        let e = error_of("[[services]]\nkind = \"process\"\nname = \"w\"\nargv = []\n");
        assert!(e.contains("services[1].argv"), "{e}");
        let e = error_of(
            "[[assertions]]\nkind = \"health\"\ncomponent = \"database\"\nsequence = [\"healthy\", \"sick\"]\n",
        );
        assert!(e.contains("assertions[0].sequence[1]"), "{e}");
        let e = error_of(
            "[[assertions]]\nkind = \"health\"\ncomponent = \"database\"\nsequence = [\"healthy\"]\nfault = \"nope\"\n",
        );
        assert!(e.contains("assertions[0].fault"), "{e}");
        let read = "read = { call = \"datastore.get\", params = { collection = \"w\", id = \"${seq}\" } }\n";
        let e = error_of(&format!(
            "[[assertions]]\nkind = \"no_lost_writes\"\nload = \"steady\"\n{read}"
        ));
        assert!(
            e.contains("assertions[0].load") && e.contains("${seq}"),
            "{e}"
        );
        let writes = MINIMAL.replace(
            "target = { call = \"flaky.work\" }",
            "target = { call = \"datastore.put\", params = { collection = \"w\", id = \"${seq}\", doc = { n = 1 } } }",
        );
        let no_seq = read.replace("${seq}", "x");
        let e = Scenario::parse(
            "t.toml",
            &format!(
                "{writes}[[assertions]]\nkind = \"no_lost_writes\"\nload = \"steady\"\n{no_seq}"
            ),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("assertions[0].read.params"), "{e}");
        Scenario::parse(
            "t.toml",
            &format!(
                "{writes}[[assertions]]\nkind = \"no_lost_writes\"\nload = \"steady\"\n{read}"
            ),
        )
        .unwrap();
        let ok = Scenario::parse(
            "t.toml",
            &format!("{MINIMAL}{process}[[faults]]\nname = \"f\"\ntarget = \"process:worker\"\nat_s = 1\nduration_s = 1\nkind = \"kill\"\nrestart = true\n"),
        )
        .unwrap();
        assert_eq!(ok.faults[0].kind, FaultKind::Kill { restart: true });
        let ws = |extra: &str| {
            Scenario::parse(
                "t.toml",
                &MINIMAL.replace("rate = 100", &format!("rate = 100\n{extra}")),
            )
        };
        for (extra, field) in [
            ("transport = \"ws\"\nsessions = 0", "loads[0].sessions"),
            ("transport = \"ws\"\nsessions = 1001", "loads[0].sessions"),
            ("sessions = 2", "loads[0].sessions"),
            ("transport = \"smoke\"", "loads[0].transport"),
        ] {
            let e = ws(extra).unwrap_err().to_string();
            assert!(e.contains(field), "{extra}: {e}");
        }
        let s = ws("transport = \"ws\"\nsessions = 8").unwrap();
        assert_eq!(s.loads[0].ws_sessions(), Some(8));
        assert_eq!(
            Scenario::parse("t", MINIMAL).unwrap().loads[0].ws_sessions(),
            None
        );
        let closed = MINIMAL.replace(
            "model = \"open\"\nrate = 100",
            "model = \"closed\"\nclients = 3",
        );
        let s = Scenario::parse("t", &format!("{closed}transport = \"ws\"\n")).unwrap();
        assert_eq!(s.loads[0].ws_sessions(), Some(3));
        let e = Scenario::parse("t", &format!("{closed}transport = \"ws\"\nsessions = 2\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("loads[0].sessions"), "{e}");
        let e = Scenario::parse("t.toml", &format!("{MINIMAL}bogus = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
    }
}
