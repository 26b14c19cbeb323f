//! Demonstrations of Plexus, runnable from the CLI and used as test scenarios.
//!
//! - [`assistant`]: an eight-module desktop assistant (EventBus, Orchestrator,
//!   Storage, DataCapture, AnalysisEngine, Gamification, AI, CuteFigurine) wired
//!   through the in-process bus with fourteen typed messages. `plexus demo pipeline`
//!   runs it and prints per-stage counts and throughput.

pub mod assistant;
