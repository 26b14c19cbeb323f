//! A run: start the proxies and the node the scenario names, drive its loads, apply
//! its faults on time, sample the breakers, then check the assertions and build the
//! report. Everything listens and sends on 127.0.0.1 only, and every loop ends by
//! the scenario's clock.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use plexus_app::App;
use plexus_core::Timestamp;
use plexus_faultproxy::FaultProxy;
use tokio::time::Instant;

use crate::ValidateError;
use crate::assertions::{self, Measured};
use crate::env::Environment;
use crate::faults::{self, Targets};
use crate::load::{self, LoadPlan};
use crate::probe;
use crate::process::Process;
use crate::report::{LoadReport, ProxyReport, Report};
use crate::scenario::{AssertionSpec, Model, Scenario, ServiceSpec};
use crate::testsvc::{FaultSwitch, TestService};

/// How a scenario is run.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Scale every time down by the scenario's `quick_scale`.
    pub quick: bool,
    /// Show live progress on standard error.
    pub progress: bool,
    /// Keep the node's data here (default: a fresh folder under the system's temp).
    pub data_dir: Option<PathBuf>,
}

/// How long the run may wait past the scenario's end for the last answers.
const GRACE: Duration = Duration::from_secs(15);

/// Runs `scenario` on a runtime of its own.
pub fn run(scenario: Scenario, options: &Options) -> Result<Report, ValidateError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| ValidateError::start("the runtime", e))?;
    runtime.block_on(run_async(scenario, options))
}

/// A started proxy, or why it was not.
enum ProxyState {
    Running {
        proxy: FaultProxy,
        control: plexus_faultproxy::control::ControlServer,
        upstream: SocketAddr,
        url: Option<String>,
    },
    Skipped(String),
}

/// The upstream of a proxy from an environment variable holding a URL.
fn upstream_from_env(var: &str) -> Result<(SocketAddr, String), String> {
    let url = std::env::var(var).map_err(|_| format!("{var} is not set"))?;
    let authority = url
        .split_once("://")
        .map_or(url.as_str(), |(_, rest)| rest)
        .split(['/', '?'])
        .next()
        .unwrap_or_default();
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:5432")
    };
    let hostport = hostport.replace("localhost", "127.0.0.1");
    let addr: SocketAddr = hostport
        .parse()
        .map_err(|_| format!("{var}: `{hostport}` is not an IP address and port"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{var} points off this machine ({addr}); the harness only sends to loopback"
        ));
    }
    Ok((addr, url))
}

/// Replaces `${proxy.NAME}` and `${proxy_url.NAME}` in the configuration text.
fn substitute(mut text: String, proxies: &BTreeMap<String, ProxyState>) -> String {
    for (name, state) in proxies {
        if let ProxyState::Running {
            proxy,
            upstream,
            url,
            ..
        } = state
        {
            let addr = proxy.addr().to_string();
            text = text.replace(&format!("${{proxy.{name}}}"), &addr);
            if let Some(url) = url {
                let with_proxy = url
                    .replace(&upstream.to_string(), &addr)
                    .replace(&format!("localhost:{}", upstream.port()), &addr);
                text = text.replace(&format!("${{proxy_url.{name}}}"), &with_proxy);
            }
        }
    }
    text
}

/// Merges `over` into `base`, tables key by key.
fn merge(base: &mut toml::Table, over: &toml::Table) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

fn model_words(model: &Model) -> (String, Option<f64>) {
    match *model {
        Model::Open {
            rate,
            rate_to: None,
            ..
        } => (format!("open {rate}/s"), Some(rate)),
        Model::Open {
            rate,
            rate_to: Some(to),
            ..
        } => (format!("open {rate}→{to}/s"), Some((rate + to) / 2.0)),
        Model::Closed { clients } => (format!("closed {clients} clients"), None),
    }
}

/// Runs `scenario` on the current runtime.
pub async fn run_async(scenario: Scenario, options: &Options) -> Result<Report, ValidateError> {
    let scenario = if options.quick {
        scenario.quick()
    } else {
        scenario
    };
    let environment = Environment::detect();

    // The proxies, then the configuration that names them.
    let mut proxies = BTreeMap::new();
    let mut config = scenario.config.clone();
    for spec in &scenario.proxies {
        let upstream = match (&spec.upstream, &spec.upstream_env) {
            (Some(addr), _) => Ok((*addr, None)),
            (None, Some(var)) => upstream_from_env(var).map(|(a, u)| (a, Some(u))),
            (None, None) => Err("no upstream".to_owned()),
        };
        let state = match upstream {
            Ok((upstream, url)) => {
                let proxy = FaultProxy::start(upstream)
                    .await
                    .map_err(|e| ValidateError::start(format!("proxy {}", spec.name), e))?;
                let control = proxy.serve_control().await.map_err(|e| {
                    ValidateError::start(format!("proxy {} control API", spec.name), e)
                })?;
                merge(&mut config, &spec.config);
                ProxyState::Running {
                    proxy,
                    control,
                    upstream,
                    url,
                }
            }
            Err(reason) => ProxyState::Skipped(reason),
        };
        proxies.insert(spec.name.clone(), state);
    }
    let config_text = toml::to_string(&config)
        .map_err(|e| ValidateError::scenario(&scenario.name, "config", e))?;
    let config_text = substitute(config_text, &proxies);

    // The node, with the test services beside the configured ones.
    let (data_dir, temporary) = match &options.data_dir {
        Some(d) => (d.clone(), false),
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            (
                std::env::temp_dir()
                    .join(format!("plexus-validate-{}-{nanos}", std::process::id())),
                true,
            )
        }
    };
    let mut switches = BTreeMap::new();
    let mut builder = App::builder()
        .toml(config_text)
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .data_dir(&data_dir);
    for spec in &scenario.services {
        if let ServiceSpec::Test { name, instances } = spec {
            let switch = FaultSwitch::default();
            for i in 0..*instances {
                builder = builder.service(Arc::new(TestService::new(name, i, switch.clone())));
            }
            switches.insert(name.clone(), switch);
        }
    }
    let app = builder
        .start()
        .await
        .map_err(|e| ValidateError::start("the node", format!("{e:#}")))?;
    for spec in &scenario.services {
        if let ServiceSpec::BuiltIn { name } = spec
            && app.node().registry().instances_named(name).is_empty()
        {
            app.stop().await;
            return Err(ValidateError::start(
                format!("service {name}"),
                "not registered: is its section enabled in the configuration?",
            ));
        }
    }
    let listening = match app.listen().await {
        Ok(l) => l,
        Err(e) => {
            app.stop().await;
            return Err(ValidateError::start("the gateway", e));
        }
    };
    let addr = listening
        .local_addr()
        .map_err(|e| ValidateError::start("the gateway", e))?;
    let node = app.node().clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(app.serve(listening, async move {
        let _ = stop_rx.await;
    }));

    // The process services, once the gateway they connect to listens; the clock
    // starts when each has registered.
    let processes: Vec<Process> = scenario
        .services
        .iter()
        .filter_map(|spec| Process::new(spec, addr, &data_dir))
        .collect();
    let mut started = Ok(());
    for p in &processes {
        started = match p.spawn().await {
            Ok(()) => p.wait_registered(&node).await,
            Err(e) => Err(e),
        };
        if started.is_err() {
            break;
        }
    }
    let outcome = match started {
        Ok(()) => drive(&scenario, options, addr, &proxies, switches, &processes).await,
        Err(e) => Err(e),
    };
    let t0_wall = outcome.as_ref().map_or_else(|_| Timestamp::now(), |d| d.3);
    let mut process_reports = Vec::new();
    for p in &processes {
        process_reports.push(p.finish(&node, t0_wall).await);
    }
    drop(node);

    let _ = stop_tx.send(());
    if tokio::time::timeout(GRACE, serving).await.is_err() {
        tracing::warn!("the node did not stop within {GRACE:?}");
    }
    if temporary {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    let (loads, faults, assertions, _) = outcome?;
    let proxies = proxies
        .iter()
        .map(|(name, state)| match state {
            ProxyState::Running {
                proxy,
                control,
                upstream,
                ..
            } => {
                let stats = proxy.stats();
                ProxyReport {
                    name: name.clone(),
                    upstream: Some(upstream.to_string()),
                    addr: Some(proxy.addr().to_string()),
                    control: Some(control.addr().to_string()),
                    accepted: stats.accepted,
                    cut: stats.cut,
                    skipped: None,
                }
            }
            ProxyState::Skipped(why) => ProxyReport {
                name: name.clone(),
                upstream: None,
                addr: None,
                control: None,
                accepted: 0,
                cut: 0,
                skipped: Some(why.clone()),
            },
        })
        .collect();
    let passed = assertions
        .iter()
        .all(|a| a.status != assertions::Status::Fail);
    Ok(Report {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        quick: options.quick,
        duration_s: scenario.duration_s,
        warmup_s: scenario.warmup_s,
        environment,
        loads,
        faults,
        proxies,
        processes: process_reports,
        assertions,
        passed,
        compared_with: None,
        comparison: Vec::new(),
    })
}

/// The loads, the faults as they happened, the assertions' outcomes, and the
/// wall-clock time of the scenario's start.
type Driven = (
    Vec<LoadReport>,
    Vec<faults::FaultRecord>,
    Vec<assertions::AssertionResult>,
    Timestamp,
);

/// Loads, faults and the probe side by side on one clock; then the assertions.
async fn drive(
    scenario: &Scenario,
    options: &Options,
    addr: SocketAddr,
    proxies: &BTreeMap<String, ProxyState>,
    switches: BTreeMap<String, FaultSwitch>,
    processes: &[Process],
) -> Result<Driven, ValidateError> {
    let client = load::client().map_err(|e| ValidateError::start("the HTTP client", e))?;
    let url = format!("http://{addr}/rpc");
    // `${run}` in a body: this run's own token, so writes of repeated runs to a
    // database that outlives them never share an id.
    let run_token = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let with_run = |body: serde_json::Value| body.to_string().replace("${run}", &run_token);
    for (i, call) in scenario.setup.iter().enumerate() {
        setup_call(&client, &url, with_run(call.body()))
            .await
            .map_err(|why| ValidateError::start(format!("setup[{i}] ({})", call.call), why))?;
    }
    // The generator runs on threads of its own, so its schedule is not queued behind
    // the node's tasks; its client (and connection pool) belongs to that runtime.
    // Nothing may return early between here and its `shutdown_background`: a
    // runtime dropped inside another panics.
    let load_client = load::client().map_err(|e| ValidateError::start("the HTTP client", e))?;
    let generator = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("validate-load")
        .enable_all()
        .build()
        .map_err(|e| ValidateError::start("the load generator's runtime", e))?;
    let metrics_url = format!("http://{addr}/metrics");
    let duration = Duration::from_secs_f64(scenario.duration_s);
    let warmup_end = Duration::from_secs_f64(scenario.warmup_s);
    // The WebSocket sessions of the loads over them, opened (on the generator's
    // runtime, which serves them) before the clock starts.
    let ws_url = format!("ws://{addr}/ws");
    let mut vias = Vec::with_capacity(scenario.loads.len());
    for spec in &scenario.loads {
        let via = match spec.ws_sessions() {
            None => Ok(load::Via::Http(load_client.clone())),
            Some(n) => generator
                .spawn(load::ws::Sessions::open(ws_url.clone(), n))
                .await
                .map_err(|e| e.to_string())
                .and_then(|opened| opened.map_err(|e| e.to_string()))
                .map(|sessions| load::Via::Ws(std::sync::Arc::new(sessions))),
        };
        match via {
            Ok(via) => vias.push(via),
            Err(why) => {
                drop(vias);
                generator.shutdown_background();
                return Err(ValidateError::start(
                    format!("the WebSocket sessions of load {}", spec.name),
                    why,
                ));
            }
        }
    }
    // A moment to spawn everything before the clock starts.
    let t0 = Instant::now() + Duration::from_millis(100);
    let t0_wall = Timestamp::now().saturating_add(Duration::from_millis(100));

    let mut recorders = Vec::new();
    let mut tasks = Vec::new();
    for (spec, via) in scenario.loads.iter().zip(vias) {
        let plan = LoadPlan {
            name: spec.name.clone(),
            url: match via {
                load::Via::Http(_) => url.clone(),
                load::Via::Ws(_) => ws_url.clone(),
            },
            body: bytes::Bytes::from(with_run(spec.target.body())),
            model: spec.model.clone(),
            start: Duration::from_secs_f64(spec.start_s),
            end: Duration::from_secs_f64(scenario.load_end(spec)),
            warmup_end,
            timeout: Duration::from_millis(spec.timeout_ms),
        };
        let rec = load::recorder(&plan);
        recorders.push((spec, rec.clone()));
        tasks.push(generator.spawn(load::run(plan, via, t0, rec)));
    }
    let breaker_services: BTreeSet<String> = scenario
        .assertions
        .iter()
        .filter_map(|a| match a {
            AssertionSpec::Breaker { service, .. } => Some(service.clone()),
            _ => None,
        })
        .collect();
    let probe = tokio::spawn(probe::breakers(
        client.clone(),
        metrics_url.clone(),
        breaker_services,
        t0,
        duration,
    ));
    let health_components: BTreeSet<String> = scenario
        .assertions
        .iter()
        .filter_map(|a| match a {
            AssertionSpec::Health { component, .. } => Some(component.clone()),
            _ => None,
        })
        .collect();
    let health_probe = tokio::spawn(probe::health(
        client.clone(),
        format!("http://{addr}/health"),
        health_components,
        t0,
        duration,
    ));
    let progress = progress(options.progress, duration, t0, &recorders);

    let mut targets = Targets {
        services: switches,
        processes: processes.iter().map(|p| (p.name().to_owned(), p)).collect(),
        ..Targets::default()
    };
    for (name, state) in proxies {
        match state {
            ProxyState::Running { proxy, .. } => {
                targets.proxies.insert(name.clone(), proxy);
            }
            ProxyState::Skipped(why) => {
                targets.missing.insert(name.clone(), why.clone());
            }
        }
    }
    let fault_records = faults::run(&scenario.faults, &targets, t0).await;
    for task in tasks {
        let _ = tokio::time::timeout(duration + GRACE, task).await;
    }
    // Dropping a runtime may not block inside another: let its threads end on their own.
    generator.shutdown_background();
    let samples = probe.await.unwrap_or_default();
    let health = health_probe.await.unwrap_or_default();
    if let Some(bar) = progress {
        bar.abort();
    }
    let metrics = probe::scrape(&client, &metrics_url)
        .await
        .unwrap_or_default();

    // Every acknowledged write of a `no_lost_writes` load, read back.
    let mut read_backs = BTreeMap::new();
    for a in &scenario.assertions {
        let AssertionSpec::NoLostWrites { load, read } = a else {
            continue;
        };
        let Some((spec, rec)) = recorders.iter().find(|(s, _)| &s.name == load) else {
            continue;
        };
        let acked = load::lock(rec).acked.clone();
        let back = crate::writes::read_back(
            &client,
            &url,
            &with_run(read.body()),
            &acked,
            Duration::from_millis(spec.timeout_ms),
        )
        .await;
        read_backs.insert(assertions::read_key(load, read), back);
    }

    let guards: Vec<_> = recorders
        .iter()
        .map(|(spec, rec)| (*spec, load::lock(rec)))
        .collect();
    let measured = Measured {
        loads: guards
            .iter()
            .map(|(spec, rec)| {
                (
                    spec.name.clone(),
                    (&**rec, spec.start_s, scenario.load_end(spec)),
                )
            })
            .collect(),
        faults: &fault_records,
        breakers: &samples,
        health: &health,
        read_backs: &read_backs,
        metrics: &metrics,
        warmup_s: scenario.warmup_s,
    };
    let results = scenario
        .assertions
        .iter()
        .map(|a| assertions::check(a, &measured))
        .collect();
    let loads = guards
        .iter()
        .map(|(spec, rec)| {
            let (mut model, offered) = model_words(&spec.model);
            if let Some(n) = spec.ws_sessions() {
                model.push_str(&format!(
                    " over {n} ws session{}",
                    if n == 1 { "" } else { "s" }
                ));
            }
            LoadReport::new(
                &spec.name,
                spec.target.label(),
                model,
                offered,
                (spec.start_s, scenario.load_end(spec)),
                scenario.warmup_s,
                rec,
            )
        })
        .collect();
    Ok((loads, fault_records, results, t0_wall))
}

/// Makes one setup call; its error (or why it got no answer) when it failed.
async fn setup_call(client: &reqwest::Client, url: &str, body: String) -> Result<(), String> {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let answer: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
    if answer.get("result").is_some() {
        return Ok(());
    }
    Err(answer
        .get("error")
        .map_or_else(|| answer.to_string(), ToString::to_string))
}

/// The live progress bar: scenario time, and each load's counts.
fn progress(
    show: bool,
    duration: Duration,
    t0: Instant,
    recorders: &[(&crate::scenario::LoadSpec, load::Shared)],
) -> Option<tokio::task::JoinHandle<()>> {
    if !show {
        return None;
    }
    let bar = ProgressBar::new(duration.as_millis() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let loads: Vec<(String, load::Shared)> = recorders
        .iter()
        .map(|(s, r)| (s.name.clone(), r.clone()))
        .collect();
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tick.tick().await;
            let elapsed = Instant::now().saturating_duration_since(t0);
            bar.set_position(elapsed.as_millis().min(duration.as_millis()) as u64);
            let msg: Vec<String> = loads
                .iter()
                .map(|(name, rec)| {
                    let c = load::lock(rec).totals;
                    format!(
                        "{name}: {} ok {} failed {} timed out",
                        c.ok, c.failed, c.timed_out
                    )
                })
                .collect();
            bar.set_message(msg.join(" | "));
            if elapsed >= duration {
                bar.finish_and_clear();
                return;
            }
        }
    }))
}
