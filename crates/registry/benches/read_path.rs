//! The call path's registry read, beside the bare lookups it is built from.
//!
//! Run: `cargo bench -p plexus-registry --bench read_path`
//!
//! - `routable`: [`Registry::routable`] on a registry of 50 services × 3 instances
//!   (lock-free snapshot load, hash lookup, `Arc` clone).
//! - `ceiling_bare_hashmap`: the same lookup and `Arc` clone in a plain `HashMap`
//!   with no synchronization at all; no shared registry can be faster.
//! - `peer_rwlock_hashmap`: the same behind a `parking_lot::RwLock`, as a registry
//!   guarded by a lock would read.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use divan::Bencher;
use parking_lot::RwLock;
use plexus_bus::Bus;
use plexus_core::{MethodDescriptor, ServiceDescriptor, ServiceName, ServiceStatus};
use plexus_registry::{Registration, Registry, RegistryConfig};

const SERVICES: usize = 50;
const INSTANCES: usize = 3;

fn main() {
    divan::main();
}

fn registry() -> Registry {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let registry =
            Registry::new(RegistryConfig::default(), Bus::new()).expect("default config");
        for s in 0..SERVICES {
            for i in 0..INSTANCES {
                let instance = format!("svc{s}-{i}");
                let descriptor = ServiceDescriptor::new(format!("svc{s}"), "bench")
                    .with_instance(instance.as_str())
                    .with_method(MethodDescriptor::new("get"));
                registry.register(descriptor).await.expect("register");
                registry
                    .set_status(&instance.into(), ServiceStatus::Healthy, None)
                    .await
                    .expect("status");
            }
        }
        registry
    })
}

fn plain_map(registry: &Registry) -> HashMap<ServiceName, Arc<[Registration]>> {
    (0..SERVICES)
        .map(|s| {
            let name = ServiceName::new(format!("svc{s}"));
            let instances = registry.routable(&name);
            (name, instances)
        })
        .collect()
}

#[divan::bench]
fn routable(bencher: Bencher<'_, '_>) {
    let registry = registry();
    let name = ServiceName::new("svc17");
    assert_eq!(registry.routable(&name).len(), INSTANCES);
    bencher.bench_local(|| registry.routable(black_box(&name)));
}

#[divan::bench]
fn ceiling_bare_hashmap(bencher: Bencher<'_, '_>) {
    let map = plain_map(&registry());
    let name = ServiceName::new("svc17");
    bencher.bench_local(|| map.get(black_box(&name)).cloned());
}

#[divan::bench]
fn peer_rwlock_hashmap(bencher: Bencher<'_, '_>) {
    let map = RwLock::new(plain_map(&registry()));
    let name = ServiceName::new("svc17");
    bencher.bench_local(|| map.read().get(black_box(&name)).cloned());
}
