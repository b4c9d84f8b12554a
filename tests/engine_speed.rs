//! Throughput smoke test of the CPU engine (ignored by default: run with `--ignored --nocapture` on an idle
//! machine; `SCULPT_BENCH_MODEL`, `SCULPT_BENCH_BATCH`, `SCULPT_BENCH_SECS` override the defaults).

use sculpt::engine::bench::{bench_infer, bench_train};
use sculpt::nn::ModelSpec;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
#[ignore]
fn resnet20_train_throughput() {
    let model: String = env("SCULPT_BENCH_MODEL", "resnet20".to_string());
    let input = if model.starts_with("resnet") || model.starts_with("vgg") { [3, 32, 32] } else { [1, 28, 28] };
    let spec = ModelSpec::from_name(&model, input, 10).unwrap();
    let batch = env("SCULPT_BENCH_BATCH", 128);
    let secs = env("SCULPT_BENCH_SECS", 10.0);
    let r = bench_train(&spec, batch, secs);
    println!("{}", serde_json::to_string(&r).unwrap());
    assert!(r.images_per_s > 0.0);
    let r = bench_infer(&spec, batch, secs / 2.0);
    println!("{}", serde_json::to_string(&r).unwrap());
}
