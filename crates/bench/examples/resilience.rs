//! Runs the resilience benchmark without the CLI:
//! `cargo run --release -p plexus-bench --example resilience [-- --quick]`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let quick = std::env::args().any(|a| a == "--quick");
    let report = plexus_bench::resilience::run(plexus_bench::Options {
        quick,
        progress: true,
    })?;
    println!("{}", report.to_table());
    println!("{}", report.to_json());
    Ok(())
}
