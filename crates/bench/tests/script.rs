//! `plexus bench script --quick`: the named results, each beside its ceiling.

#![allow(clippy::unwrap_used)]

use plexus_bench::{Options, Unit};

#[test]
fn quick_script_bench_reports_the_named_results_beside_their_ceilings() {
    let report = plexus_bench::script::run(Options {
        quick: true,
        progress: false,
    })
    .unwrap();
    assert_eq!(report.bench, "script");
    println!("{}", report.to_json());
    for name in ["script_run_noop", "script_call_echo"] {
        let r = report.get(name).unwrap_or_else(|| panic!("{name} missing"));
        assert!(matches!(r.unit, Unit::Micros), "{name}");
        assert!(!r.higher_is_better, "{name}");
        assert!(r.value > 0.0 && r.value.is_finite(), "{name}: {}", r.value);
        let ceiling = r.ceiling_value.unwrap();
        assert!(ceiling > 0.0, "{name}: {ceiling}");
        assert!(r.ratio.is_some(), "{name}");
    }
}
