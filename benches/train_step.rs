//! One training step (forward, cross-entropy, backward, SGD): ResNet-20 and LeNet-5 at batch 128.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ndarray::Array4;
use sculpt::engine::cpu::CpuNetwork;
use sculpt::engine::Network;
use sculpt::nn::ModelSpec;
use sculpt::optim::SgdConfig;

const BATCH: usize = 128;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("train_step");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, input) in [("resnet20", [3, 32, 32]), ("lenet5", [1, 28, 28])] {
        let spec = ModelSpec::from_name(name, input, 10).expect("known model");
        let mut net = CpuNetwork::new(&spec, 0).expect("valid spec");
        let [ch, h, w] = input;
        let x = Array4::from_shape_fn((BATCH, ch, h, w), |(n, c, y, x)| {
            ((n * 7 + c * 3 + y * 5 + x) % 17) as f32 / 8.0 - 1.0
        });
        let labels: Vec<u32> = (0..BATCH as u32).map(|i| i % 10).collect();
        let cfg = SgdConfig::default();
        group.bench_function(name, |b| {
            b.iter(|| {
                net.train_batch(x.view(), &labels, 0.0).expect("batch fits");
                net.sgd_step(&cfg, 0.01);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
