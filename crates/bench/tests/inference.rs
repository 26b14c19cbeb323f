//! `plexus bench inference --quick`: the named results.

#![allow(clippy::unwrap_used)]

use plexus_bench::{Options, Unit};

#[test]
fn quick_inference_bench_reports_the_named_results() {
    let report = plexus_bench::inference::run(Options {
        quick: true,
        progress: false,
    })
    .unwrap();
    assert_eq!(report.bench, "inference");
    println!("{}", report.to_json());
    for name in [
        "inference_overhead_p50_us",
        "inference_overhead_p99_us",
        "inference_stream_overhead_p50_us",
        "inference_stream_overhead_p99_us",
        "inference_p99_us",
        "inference_stream_p99_us",
    ] {
        let r = report.get(name).unwrap_or_else(|| panic!("{name} missing"));
        assert!(matches!(r.unit, Unit::Micros), "{name}");
        assert!(r.value >= 0.0 && r.value.is_finite(), "{name}: {}", r.value);
    }
    for name in ["inference_p99_us", "inference_stream_p99_us"] {
        let r = report.get(name).unwrap();
        assert!(
            r.ceiling_value.unwrap() > 0.0 && r.ratio.is_some(),
            "{name}"
        );
    }
}
