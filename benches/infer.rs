//! Batch-1 inference latency of the compiled model: the `.scb` through the runtime (f32 and int8) and the dense
//! ONNX through tract, for LeNet-5 and ResNet-20 at 0, 90, 95 and 98% sparsity (synthetic Kaiming weights with
//! the smallest magnitudes of every prunable weight zeroed).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use sculpt::compile::bench::{random_images, synthetic_graph};
use sculpt::compile::emit::onnx::{self, Variant};
use sculpt::compile::interp::normalize;
use sculpt::compile::lower;
use sculpt::compile::pipeline::{build, target_formats};
use sculpt::nn::ModelSpec;
use sculpt::verify::runners::Tract;

fn bench(c: &mut Criterion) {
    for (name, input) in [("lenet5", [1, 28, 28]), ("resnet20", [3, 32, 32])] {
        let spec = ModelSpec::from_name(name, input, 10).expect("known model");
        let mut group = c.benchmark_group(format!("infer_{name}"));
        group.sample_size(20);
        for sparsity in [0.0, 0.9, 0.95, 0.98] {
            let graph = synthetic_graph(&spec, sparsity, 0).expect("valid model");
            let calibration = random_images(&graph, 32, 7);
            let g = build(graph, &target_formats(None), Some(&calibration)).expect("compiles");
            let x = random_images(&g.float, 1, 3);
            let label = format!("{:.0}%", 100.0 * sparsity);

            let onnx = onnx::emit(&g.float, Variant::Dense, Some(&g.hash)).expect("emits");
            let tract = Tract::load(&onnx, &g.float).expect("tract loads");
            let xn = normalize(&g.float, &x);
            group.bench_function(BenchmarkId::new("tract_dense_onnx", &label), |b| {
                b.iter(|| tract.run_normalised(&xn).expect("runs"))
            });

            let q = g.int8.as_ref().expect("int8 graph");
            for (runner, bytes) in [
                (
                    "runtime_scb_f32",
                    lower::scb(&g.float, g.hash).expect("lowers"),
                ),
                ("runtime_scb_int8", lower::scb(q, g.hash).expect("lowers")),
            ] {
                let model = sculpt_runtime::Model::parse(&bytes).expect("valid .scb");
                let mut storage = vec![0u8; model.arena_size() + 16];
                let off = storage.as_ptr().align_offset(16).min(16);
                let arena = &mut storage[off..off + model.arena_size()];
                let mut out = vec![0.0f32; model.output_len()];
                group.bench_function(BenchmarkId::new(runner, &label), |b| {
                    b.iter(|| model.run(&x, arena, &mut out).expect("runs"))
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
