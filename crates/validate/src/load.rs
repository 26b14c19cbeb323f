//! The load generator: JSON-RPC requests to a node on loopback, over HTTP
//! (`POST /rpc`) or over long-lived WebSocket sessions ([`ws`]: `/ws`, answers matched
//! by id), in the open model (requests start on a schedule whatever the answers do) or
//! the closed model (N clients, each waiting for its answer).
//!
//! In the open model a request's latency runs from its *intended* send time, not
//! from when the generator got round to sending it, so a stall of the server shows
//! in the percentiles instead of pausing the clock (no coordinated omission, as in
//! wrk2). How late the generator itself sent each request is measured too (the send
//! lag): when it could not hold the schedule (more than 1 % of the requests sent over
//! [`SATURATION_LAG_US`] late, i.e. a p99 send lag above it, or requests dropped
//! because `max_in_flight` were out) the load, or the window of it, is marked
//! saturated and latency assertions on it fail: the server was offered less load than
//! the scenario says, so its latency would look better than it is.
//!
//! Every request ends as one of: ok, failed (a JSON-RPC error, an HTTP error status,
//! a broken connection or WebSocket session), timed out (no answer within
//! `timeout_ms`; its latency is recorded as the time it was given up after), or
//! dropped (never sent). Figures are
//! kept per [`BUCKET`] of scenario time by intended send time, so a window of the run
//! (before, during, after a fault) can be asserted on; requests due in the warm-up
//! are sent but only counted in the totals.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::scenario::Model;

pub mod ws;

/// The width of a timeline bucket.
pub const BUCKET: Duration = Duration::from_millis(250);

/// A p99 send lag above this (µs) marks the generator saturated.
pub const SATURATION_LAG_US: u64 = 10_000;

/// The longest latency a histogram holds (µs): longer ones are clamped to it.
const MAX_US: u64 = 120_000_000;

/// Where a request body takes the request's sequence number (1, 2, …, distinct
/// within the load), so that each write of a load can have its own id.
pub const SEQ: &str = "${seq}";

/// One load, ready to run.
#[derive(Clone, Debug)]
pub struct LoadPlan {
    /// Its name.
    pub name: String,
    /// The URL requests are posted to (`http://127.0.0.1:PORT/rpc`); for a load over
    /// WebSocket sessions, the URL they were opened to (`ws://127.0.0.1:PORT/ws`).
    pub url: String,
    /// The request body; every [`SEQ`] in it becomes the request's sequence number,
    /// and the numbers of the requests answered ok are kept ([`Recorder::acked`]).
    pub body: bytes::Bytes,
    /// The arrival model.
    pub model: Model,
    /// When it starts, from the run's start.
    pub start: Duration,
    /// When it ends.
    pub end: Duration,
    /// Requests due before this are not in the figures.
    pub warmup_end: Duration,
    /// The time a request is given.
    pub timeout: Duration,
}

/// How one request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A result.
    Ok,
    /// An error, with its kind (`rpc -32006`, `http 503`, `connection`).
    Failed(String),
    /// No answer in time.
    TimedOut,
}

/// Counts of requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Requests due (sent or dropped).
    pub due: u64,
    /// Answered with a result.
    pub ok: u64,
    /// Answered with an error or broken.
    pub failed: u64,
    /// Unanswered in time.
    pub timed_out: u64,
    /// Due but never sent: `max_in_flight` were out.
    pub dropped: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.due += other.due;
        self.ok += other.ok;
        self.failed += other.failed;
        self.timed_out += other.timed_out;
        self.dropped += other.dropped;
    }

    /// Requests sent.
    pub fn sent(&self) -> u64 {
        self.due - self.dropped
    }
}

/// One timeline bucket.
#[derive(Clone, Debug)]
pub struct Bucket {
    /// Its counts.
    pub counts: Counts,
    /// Latencies (µs) of the requests that ended (two significant digits).
    pub latency: Histogram<u64>,
    /// The largest send lag (µs).
    pub max_lag_us: u64,
    /// Requests sent more than [`SATURATION_LAG_US`] late.
    pub late: u64,
}

impl Bucket {
    fn new() -> Self {
        Self {
            counts: Counts::default(),
            latency: histogram(2),
            max_lag_us: 0,
            late: 0,
        }
    }
}

/// A histogram of 1 µs to [`MAX_US`] (values above are clamped by `saturating_record`).
pub(crate) fn histogram(sigfig: u8) -> Histogram<u64> {
    // The bounds and the precision (2 or 3) are valid constants.
    Histogram::new_with_bounds(1, MAX_US, sigfig).unwrap_or_else(|_| unreachable!())
}

/// What one load saw, as it happens.
#[derive(Debug)]
pub struct Recorder {
    /// Everything, warm-up included.
    pub totals: Counts,
    /// Latencies (µs) after the warm-up, three significant digits.
    pub latency: Histogram<u64>,
    /// How late the generator sent each request (µs), after the warm-up.
    pub lag: Histogram<u64>,
    /// The timeline, by intended send time from the run's start.
    pub buckets: Vec<Bucket>,
    /// Failures by kind, after the warm-up.
    pub errors: BTreeMap<String, u64>,
    /// The sequence numbers of the requests answered ok, warm-up included (kept
    /// only when the body names [`SEQ`]).
    pub acked: Vec<u64>,
    /// How its WebSocket sessions fared, for a load over them (set when it ends).
    pub sessions: Option<ws::SessionStats>,
    warmup_end: Duration,
}

impl Recorder {
    fn new(warmup_end: Duration) -> Self {
        Self {
            totals: Counts::default(),
            latency: histogram(3),
            lag: histogram(3),
            buckets: Vec::new(),
            errors: BTreeMap::new(),
            acked: Vec::new(),
            sessions: None,
            warmup_end,
        }
    }

    fn bucket(&mut self, at: Duration) -> &mut Bucket {
        let i = (at.as_micros() / BUCKET.as_micros()) as usize;
        if self.buckets.len() <= i {
            self.buckets.resize_with(i + 1, Bucket::new);
        }
        &mut self.buckets[i]
    }

    fn due(&mut self, at: Duration, lag: Option<Duration>, dropped: bool) {
        let measured = at >= self.warmup_end;
        let counts = Counts {
            due: 1,
            dropped: u64::from(dropped),
            ..Counts::default()
        };
        self.totals.add(&counts);
        let lag_us = lag.map(micros);
        let bucket = self.bucket(at);
        bucket.counts.add(&counts);
        if let Some(us) = lag_us {
            bucket.max_lag_us = bucket.max_lag_us.max(us);
            bucket.late += u64::from(us > SATURATION_LAG_US);
        }
        if measured {
            if let Some(us) = lag_us {
                self.lag.saturating_record(us);
            }
            if dropped {
                *self.errors.entry("dropped (generator)".into()).or_default() += 1;
            }
        }
    }

    fn ended(&mut self, at: Duration, latency: Duration, outcome: Outcome, seq: Option<u64>) {
        let measured = at >= self.warmup_end;
        if let (Outcome::Ok, Some(seq)) = (&outcome, seq) {
            self.acked.push(seq);
        }
        let mut counts = Counts::default();
        match &outcome {
            Outcome::Ok => counts.ok = 1,
            Outcome::Failed(_) => counts.failed = 1,
            Outcome::TimedOut => counts.timed_out = 1,
        }
        self.totals.add(&counts);
        let us = micros(latency).max(1);
        let bucket = self.bucket(at);
        bucket.counts.add(&counts);
        bucket.latency.saturating_record(us);
        if measured {
            self.latency.saturating_record(us);
            match outcome {
                Outcome::Ok => {}
                Outcome::Failed(kind) => *self.errors.entry(kind).or_default() += 1,
                Outcome::TimedOut => *self.errors.entry("timed out".into()).or_default() += 1,
            }
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A running load's shared recorder.
pub type Shared = Arc<Mutex<Recorder>>;

/// Locks a recorder; a panicked holder left whole figures, so poison is ignored.
pub fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Recorder> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The HTTP client loads share: loopback only, no proxy, no Nagle.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1024)
        .build()
}

/// A new recorder for `plan`.
pub fn recorder(plan: &LoadPlan) -> Shared {
    Arc::new(Mutex::new(Recorder::new(plan.warmup_end)))
}

/// A body with [`SEQ`] in it, cut at each: the request numbered `n` is the parts
/// joined by `n`.
#[derive(Clone, Debug)]
struct Template(Option<Arc<[String]>>);

impl Template {
    fn of(body: &bytes::Bytes) -> Self {
        Self(
            std::str::from_utf8(body)
                .ok()
                .filter(|s| s.contains(SEQ))
                .map(|s| s.split(SEQ).map(str::to_owned).collect()),
        )
    }

    /// The body of request `n`, and its number when the body takes one.
    fn render(&self, body: &bytes::Bytes, n: u64) -> (bytes::Bytes, Option<u64>) {
        match &self.0 {
            None => (body.clone(), None),
            Some(parts) => (bytes::Bytes::from(parts.join(&n.to_string())), Some(n)),
        }
    }
}

/// How a load's requests travel.
#[derive(Clone, Debug)]
pub enum Via {
    /// One `POST` of [`LoadPlan::url`] each, on this client's pooled connections.
    Http(reqwest::Client),
    /// Over these sessions, opened before the clock starts: round-robin in the open
    /// model, session `i` for client `i` in the closed one.
    Ws(Arc<ws::Sessions>),
}

impl Via {
    /// Sends one request (as client `client` in the closed model) and classifies
    /// its answer.
    async fn send(
        &self,
        url: &str,
        body: bytes::Bytes,
        timeout: Duration,
        client: Option<usize>,
    ) -> Outcome {
        match self {
            Via::Http(http) => send(http, url, body, timeout).await,
            Via::Ws(sessions) => {
                let session = match client {
                    Some(i) => sessions.get(i),
                    None => sessions.next(),
                };
                session.call(&body, timeout).await
            }
        }
    }
}

/// Runs `plan` from `t0` (the run's start) to its end; every loop is bounded by the
/// plan's end and every request by its timeout.
pub async fn run(plan: LoadPlan, via: Via, t0: Instant, rec: Shared) {
    match plan.model {
        Model::Open {
            rate,
            rate_to,
            max_in_flight,
        } => {
            open(
                &plan,
                via.clone(),
                t0,
                rec.clone(),
                (rate, rate_to.unwrap_or(rate)),
                max_in_flight,
            )
            .await
        }
        Model::Closed { clients } => closed(&plan, via.clone(), t0, rec.clone(), clients).await,
    }
    if let Via::Ws(sessions) = via {
        lock(&rec).sessions = Some(sessions.stats());
    }
}

/// The offset of the `i`th request from the start of a load running `length` at a
/// rate going linearly from `r0` to `r1`; `None` past the end.
pub fn schedule(i: u64, (r0, r1): (f64, f64), length: Duration) -> Option<Duration> {
    let n = i as f64;
    let len = length.as_secs_f64();
    let t = if (r1 - r0).abs() < f64::EPSILON {
        n / r0
    } else {
        // n = r0 t + a t², a = (r1 - r0) / (2 len)
        let a = (r1 - r0) / (2.0 * len);
        let disc = r0 * r0 + 4.0 * a * n;
        if disc < 0.0 {
            return None;
        }
        (-r0 + disc.sqrt()) / (2.0 * a)
    };
    (t.is_finite() && t >= 0.0 && t < len).then(|| Duration::from_secs_f64(t))
}

async fn open(
    plan: &LoadPlan,
    via: Via,
    t0: Instant,
    rec: Shared,
    rates: (f64, f64),
    max_in_flight: usize,
) {
    let in_flight = Arc::new(AtomicUsize::new(0));
    // Told when the last request out ends (a permit is kept if nobody waits yet).
    let idle = Arc::new(tokio::sync::Notify::new());
    let length = plan.end.saturating_sub(plan.start);
    let template = Template::of(&plan.body);
    let mut i = 0u64;
    while let Some(offset) = schedule(i, rates, length) {
        i += 1;
        let at = plan.start + offset;
        let intended = t0 + at;
        tokio::time::sleep_until(intended).await;
        let lag = Instant::now().saturating_duration_since(intended);
        if in_flight.load(Ordering::Relaxed) >= max_in_flight {
            lock(&rec).due(at, Some(lag), true);
            continue;
        }
        lock(&rec).due(at, Some(lag), false);
        in_flight.fetch_add(1, Ordering::Relaxed);
        let (via, rec, in_flight, idle) =
            (via.clone(), rec.clone(), in_flight.clone(), idle.clone());
        let (body, seq) = template.render(&plan.body, i);
        let (url, timeout) = (plan.url.clone(), plan.timeout);
        tokio::spawn(async move {
            let outcome = via.send(&url, body, timeout, None).await;
            lock(&rec).ended(at, intended.elapsed(), outcome, seq);
            // Let go of the shared state before saying so: the waiter takes it back.
            drop((rec, via));
            if in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
                idle.notify_one();
            }
        });
    }
    // Wait for the requests still out; each ends by its own timeout.
    let deadline = Instant::now() + plan.timeout + Duration::from_secs(1);
    while in_flight.load(Ordering::Acquire) > 0 {
        if tokio::time::timeout_at(deadline, idle.notified())
            .await
            .is_err()
        {
            break;
        }
    }
}

async fn closed(plan: &LoadPlan, via: Via, t0: Instant, rec: Shared, clients: usize) {
    tokio::time::sleep_until(t0 + plan.start).await;
    let end = t0 + plan.end;
    let template = Template::of(&plan.body);
    let numbers = Arc::new(std::sync::atomic::AtomicU64::new(1));
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        let (via, rec) = (via.clone(), rec.clone());
        let (template, numbers) = (template.clone(), numbers.clone());
        let (url, body, timeout) = (plan.url.clone(), plan.body.clone(), plan.timeout);
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                let sent = Instant::now();
                let at = sent - t0;
                lock(&rec).due(at, None, false);
                let (request, seq) =
                    template.render(&body, numbers.fetch_add(1, Ordering::Relaxed));
                let outcome = via.send(&url, request, timeout, Some(i)).await;
                lock(&rec).ended(at, sent.elapsed(), outcome, seq);
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// Posts one request and classifies its answer.
pub async fn send(
    client: &reqwest::Client,
    url: &str,
    body: bytes::Bytes,
    timeout: Duration,
) -> Outcome {
    let request = async {
        let response = client
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|_| Outcome::Failed("connection".into()))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|_| Outcome::Failed("connection".into()))?;
        if !status.is_success() {
            return Err(Outcome::Failed(format!("http {}", status.as_u16())));
        }
        Ok::<_, Outcome>(classify(&bytes))
    };
    match tokio::time::timeout(timeout, request).await {
        Ok(Ok(outcome) | Err(outcome)) => outcome,
        Err(_) => Outcome::TimedOut,
    }
}

/// A JSON-RPC answer: ok when it has a `result`, failed with its code otherwise.
fn classify(body: &[u8]) -> Outcome {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => classify_value(&value),
        Err(_) => Outcome::Failed("invalid answer".into()),
    }
}

/// [`classify`] of an answer already parsed.
fn classify_value(value: &serde_json::Value) -> Outcome {
    match value.get("error") {
        None if value.get("result").is_some() => Outcome::Ok,
        None => Outcome::Failed("invalid answer".into()),
        Some(e) => Outcome::Failed(match e.get("code").and_then(serde_json::Value::as_i64) {
            Some(code) => format!("rpc {code}"),
            None => "rpc error".into(),
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_constant_rate_is_evenly_spaced() {
        let len = Duration::from_secs(1);
        assert_eq!(schedule(0, (100.0, 100.0), len), Some(Duration::ZERO));
        assert_eq!(
            schedule(50, (100.0, 100.0), len),
            Some(Duration::from_millis(500))
        );
        assert_eq!(schedule(100, (100.0, 100.0), len), None);
    }

    #[test]
    fn a_ramp_sends_the_area_under_its_rate() {
        let len = Duration::from_secs(2);
        // 0 → 200/s over 2 s: 200 requests in all, the first half-second holds 12.5.
        let count = (0..)
            .take_while(|&i| schedule(i, (1e-9, 200.0), len).is_some())
            .count();
        assert!((199..=201).contains(&count), "{count}");
        let t = schedule(100, (1e-9, 200.0), len).unwrap().as_secs_f64();
        assert!((t - 2f64.sqrt()).abs() < 0.01, "{t}");
        let down = (0..)
            .take_while(|&i| schedule(i, (200.0, 1.0), len).is_some())
            .count();
        assert!((199..=203).contains(&down), "{down}");
    }

    #[test]
    fn answers_are_classified_by_their_shape() {
        assert_eq!(
            classify(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#),
            Outcome::Ok
        );
        assert_eq!(
            classify(br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32006,"message":"x"}}"#),
            Outcome::Failed("rpc -32006".into())
        );
        assert_eq!(
            classify(b"<html>"),
            Outcome::Failed("invalid answer".into())
        );
    }

    #[test]
    fn warm_up_is_counted_but_not_measured() {
        let mut rec = Recorder::new(Duration::from_secs(1));
        rec.due(Duration::from_millis(500), Some(Duration::ZERO), false);
        rec.ended(
            Duration::from_millis(500),
            Duration::from_millis(3),
            Outcome::Ok,
            Some(1),
        );
        rec.due(Duration::from_millis(1500), Some(Duration::ZERO), false);
        rec.ended(
            Duration::from_millis(1500),
            Duration::from_millis(7),
            Outcome::TimedOut,
            Some(2),
        );
        assert_eq!(rec.totals.ok, 1);
        assert_eq!(rec.totals.timed_out, 1);
        assert_eq!(rec.latency.len(), 1);
        // Recorded whole, not clamped to a small range.
        assert!(rec.latency.max() >= 7000, "{}", rec.latency.max());
        assert_eq!(rec.errors.get("timed out"), Some(&1));
        assert_eq!(rec.buckets.len(), 7);
        // Only the request answered ok was acknowledged.
        assert_eq!(rec.acked, [1]);
    }

    #[test]
    fn a_body_with_seq_numbers_each_request() {
        let body = bytes::Bytes::from_static(br#"{"id":"w-${seq}","n":"${seq}"}"#);
        let t = Template::of(&body);
        assert_eq!(
            t.render(&body, 17),
            (
                bytes::Bytes::from_static(br#"{"id":"w-17","n":"17"}"#),
                Some(17)
            )
        );
        let plain = bytes::Bytes::from_static(b"{}");
        assert_eq!(
            Template::of(&plain).render(&plain, 3),
            (plain.clone(), None)
        );
    }

    fn with_late_sends(late: u64, dropped: bool) -> Recorder {
        let mut rec = Recorder::new(Duration::ZERO);
        for i in 0..100u64 {
            let at = Duration::from_millis(i);
            let lag = Duration::from_millis(if i < late { 20 } else { 0 });
            rec.due(at, Some(lag), dropped && i == 50);
            rec.ended(at, Duration::from_millis(1), Outcome::Ok, None);
        }
        rec
    }

    #[test]
    fn a_window_where_the_generator_fell_behind_is_saturated() {
        let all = crate::scenario::Window::default();
        let saturated =
            |rec: &Recorder| crate::assertions::window(rec, 0.0, 1.0, &all, 0.0).saturated;
        assert!(
            !saturated(&with_late_sends(1, false)),
            "1 % late: p99 within bounds"
        );
        assert!(
            saturated(&with_late_sends(2, false)),
            "2 % late: p99 over the bound"
        );
        assert!(saturated(&with_late_sends(0, true)), "a dropped request");
    }
}
