//! Convolution kernels on ResNet-20 shapes (batch 128): forward and backward GFLOP/s on every kernel path
//! this CPU runs, side by side.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sculpt::engine::cpu::kernels::chunk_count;
use sculpt::engine::cpu::kernels::conv::{backward, forward, ConvGeom, ConvScratch};
use sculpt::engine::cpu::simd::KernelPath;

const BATCH: usize = 128;

fn shapes() -> Vec<(&'static str, ConvGeom)> {
    let g = |cin, cout, hw, s| ConvGeom::new(cin, cout, hw, hw, 3, s, 1).expect("valid shape");
    vec![
        ("16x32x32", g(16, 16, 32, 1)),
        ("16to32_s2", g(16, 32, 32, 2)),
        ("32x16x16", g(32, 32, 16, 1)),
        ("64x8x8", g(64, 64, 8, 1)),
    ]
}

fn fill(len: usize, seed: u32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32
                / (1u32 << 24) as f32
                - 0.5
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv");
    group.sample_size(10);
    for ((name, g), path) in shapes()
        .into_iter()
        .flat_map(|s| KernelPath::available().into_iter().map(move |p| (s, p)))
    {
        let x = fill(BATCH * g.in_len(), 1);
        let w = fill(g.cout * g.kdim(), 2);
        let dy = fill(BATCH * g.out_len(), 3);
        let mut y = vec![0.0; BATCH * g.out_len()];
        let mut dx = vec![0.0; BATCH * g.in_len()];
        let mut dw = vec![0.0; w.len()];
        let mut scratch: Vec<ConvScratch> = (0..chunk_count(BATCH))
            .map(|_| ConvScratch::default())
            .collect();
        let mut wt = Vec::new();
        let flops = 2 * BATCH as u64 * (g.out_len() * g.kdim()) as u64;
        group.throughput(Throughput::Elements(flops));
        group.bench_function(format!("forward/{name}/{path}"), |b| {
            b.iter(|| forward(path, &g, &x, &w, None, false, &mut y, &mut scratch, &mut wt))
        });
        group.throughput(Throughput::Elements(2 * flops));
        group.bench_function(format!("backward/{name}/{path}"), |b| {
            b.iter(|| {
                backward(
                    path,
                    &g,
                    &x,
                    &w,
                    &dy,
                    Some((&mut dx, false)),
                    &mut dw,
                    None,
                    &mut scratch,
                    &mut wt,
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
