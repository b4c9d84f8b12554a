//! Every runtime kernel against the IR interpreter, on every kernel path this machine has (the portable one
//! always): random convolution and gemm layers (strides, paddings, kernel sizes, channel counts that are not
//! multiples of the vector width, densities 0–100% with empty rows and wholly pruned layers), every index
//! encoding, f32, f16 and int8 weights, with and without ReLU and a fused residual. Float results agree within
//! a relative 1e-4; int8 results are bit-identical to the interpreter and therefore across paths.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sculpt::compile::batch::run_batch;
use sculpt::compile::emit::binary::{BufferSpec, CsrBytes, OpSpec, ScbModel, TensorSpec};
use sculpt::compile::interp;
use sculpt::compile::ir::{Bias, Graph, IndexEncoding, InputSpec, Op, Storage, Weight};
use sculpt::compile::lower;
use sculpt::compile::passes::quantize::{quantize, to_f16};
use sculpt_runtime::format::{Opcode, ValueType};
use sculpt_runtime::{KernelPath, Model};

/// The storage a test forces on every weight: dense, or CSR in one index format.
#[derive(Debug, Clone, Copy)]
enum Store {
    Dense,
    Csr(IndexEncoding),
}

const STORES: [Store; 5] = [
    Store::Dense,
    Store::Csr(IndexEncoding::CsrGap8),
    Store::Csr(IndexEncoding::CsrIdx16),
    Store::Csr(IndexEncoding::CsrIdx32),
    Store::Csr(IndexEncoding::Rice),
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Value {
    F32,
    F16,
    I8,
}

fn restore(mut g: Graph, store: Store) -> Graph {
    for n in &mut g.nodes {
        if let Some(w) = n.op.weight_mut() {
            w.storage = match store {
                Store::Dense => Storage::Dense(w.to_dense()),
                Store::Csr(f) => w.to_csr(f),
            };
        }
    }
    g.validate().unwrap();
    g
}

/// `n` weights with the given density, row 0 always empty when `empty_row` (and rows > 1).
fn weights(
    rng: &mut ChaCha8Rng,
    rows: usize,
    cols: usize,
    density: f64,
    empty_row: bool,
) -> Vec<f32> {
    let mut w: Vec<f32> = (0..rows * cols)
        .map(|_| {
            if rng.gen_bool(density) {
                rng.gen_range(-1.0f32..1.0)
            } else {
                0.0
            }
        })
        .collect();
    if empty_row && rows > 1 {
        w[..cols].fill(0.0);
    }
    w
}

fn input_spec(c: usize, h: usize, w: usize) -> InputSpec {
    InputSpec {
        shape: [c, h, w],
        mean: (0..c).map(|i| 0.1 * i as f32).collect(),
        std: (0..c).map(|i| 0.5 + 0.25 * i as f32).collect(),
    }
}

/// A convolution layer (optionally with ReLU, optionally followed by an ADD of a second convolution of the
/// same input, which the lowering fuses into the first as a residual).
#[derive(Debug, Clone, Copy)]
struct ConvCase {
    c: usize,
    h: usize,
    w: usize,
    co: usize,
    k: usize,
    s: usize,
    p: usize,
    density: f64,
    relu: bool,
    residual: bool,
}

fn conv_graph(case: &ConvCase, rng: &mut ChaCha8Rng) -> Graph {
    let ConvCase {
        c,
        h,
        w,
        co,
        k,
        s,
        p,
        density,
        relu,
        residual,
    } = *case;
    let mut g = Graph::new(input_spec(c, h, w));
    let conv = |rng: &mut ChaCha8Rng, relu: bool, density: f64| Op::Conv {
        weight: Weight::dense(
            vec![co, c, k, k],
            weights(rng, co, c * k * k, density, true),
        ),
        bias: Some(Bias::F32(
            (0..co).map(|_| rng.gen_range(-0.5..0.5)).collect(),
        )),
        stride: s,
        padding: p,
        relu,
    };
    if residual {
        let other = g.push("shortcut", conv(rng, true, 0.5), vec![0]).unwrap();
        let main = g.push("conv", conv(rng, false, density), vec![0]).unwrap();
        g.push("add", Op::Add { relu }, vec![main, other]).unwrap();
    } else {
        g.push("conv", conv(rng, relu, density), vec![0]).unwrap();
    }
    let last = g.nodes.len() - 1;
    g.push("flatten", Op::Flatten, vec![last]).unwrap();
    g
}

fn gemm_graph(
    c: usize,
    h: usize,
    w: usize,
    rows: usize,
    density: f64,
    relu: bool,
    rng: &mut ChaCha8Rng,
) -> Graph {
    let mut g = Graph::new(input_spec(c, h, w));
    let f = g.push("flatten", Op::Flatten, vec![0]).unwrap();
    let cols = c * h * w;
    g.push(
        "fc",
        Op::Gemm {
            weight: Weight::dense(vec![rows, cols], weights(rng, rows, cols, density, true)),
            bias: Some(Bias::F32(
                (0..rows).map(|_| rng.gen_range(-0.5..0.5)).collect(),
            )),
            relu,
        },
        vec![f],
    )
    .unwrap();
    g
}

fn images(g: &Graph, n: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<f32>> {
    let len: usize = g.input.shape.iter().product();
    (0..n)
        .map(|_| (0..len).map(|_| rng.gen_range(0.0f32..1.0)).collect())
        .collect()
}

/// Runs `g` (float) in the requested value type and storage through the runtime on every available path and
/// compares each with the interpreter.
fn check(g: &Graph, value: Value, store: Store, rng: &mut ChaCha8Rng, what: &str) {
    let xs = images(g, 3, rng);
    let typed = match value {
        Value::F32 => g.clone(),
        Value::F16 => to_f16(g).unwrap(),
        Value::I8 => {
            let calib: Vec<f32> = images(g, 8, rng).concat();
            quantize(g, &calib).unwrap()
        }
    };
    let typed = restore(typed, store);
    let bytes = lower::scb(&typed, [7; 32]).unwrap_or_else(|e| panic!("{what}: {e}"));
    let model = Model::parse(&bytes).unwrap_or_else(|e| panic!("{what}: {e:?}"));
    let mut arena = vec![0u8; model.arena_size() + 3];
    let mut y = vec![0.0f32; model.output_len()];
    let mut paths = 0;
    for path in KernelPath::ALL.into_iter().filter(|p| p.available()) {
        paths += 1;
        for x in &xs {
            let want = interp::run(&typed, x).unwrap();
            model.run_on(path, x, &mut arena, &mut y).unwrap();
            if value == Value::I8 {
                let bits: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
                let want_bits: Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
                assert_eq!(
                    bits,
                    want_bits,
                    "{what} on {}: int8 must be bit-exact",
                    path.name()
                );
            } else {
                let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                for (i, (a, b)) in y.iter().zip(&want).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-4 * scale,
                        "{what} on {}: element {i}: runtime {a} vs interpreter {b}",
                        path.name()
                    );
                }
            }
        }
    }
    assert!(paths >= 1);
}

fn random_conv(rng: &mut ChaCha8Rng) -> ConvCase {
    let k: usize = rng.gen_range(1..=5);
    let p = rng.gen_range(0..k);
    let s = rng.gen_range(1..=3);
    let min = k.saturating_sub(2 * p).max(1);
    let h = rng.gen_range(min..=min + 13);
    let w = rng.gen_range(min..=min + 19);
    let c = [1, 2, 3, 4, 5, 7, 8, 9, 17][rng.gen_range(0..9)];
    let co = [1, 2, 3, 4, 5, 6, 9, 13][rng.gen_range(0..8)];
    let density = [0.0, 0.02, 0.1, 0.3, 0.6, 0.9, 1.0][rng.gen_range(0..7)];
    ConvCase {
        c,
        h,
        w,
        co,
        k,
        s,
        p,
        density,
        relu: rng.gen_bool(0.5),
        residual: rng.gen_bool(0.3),
    }
}

#[test]
fn random_convolutions_every_value_type_and_encoding() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for i in 0..60 {
        let case = random_conv(&mut rng);
        let g = conv_graph(&case, &mut rng);
        let store = STORES[i % STORES.len()];
        for value in [Value::F32, Value::F16, Value::I8] {
            check(
                &g,
                value,
                store,
                &mut rng,
                &format!("case {i} {case:?} {value:?} {store:?}"),
            );
        }
    }
}

#[test]
fn shapes_of_the_benchmarked_models() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let cases = [
        (3, 32, 32, 16, 3, 1, 1),
        (16, 32, 32, 16, 3, 1, 1),
        (16, 32, 32, 32, 3, 2, 1),
        (32, 16, 16, 32, 3, 1, 1),
        (64, 8, 8, 64, 3, 1, 1),
        (32, 16, 16, 64, 1, 2, 0),
        (1, 28, 28, 6, 5, 1, 2),
        (6, 14, 14, 16, 5, 1, 0),
    ];
    for (i, &(c, h, w, co, k, s, p)) in cases.iter().enumerate() {
        for density in [0.0, 0.05, 0.1, 1.0] {
            let case = ConvCase {
                c,
                h,
                w,
                co,
                k,
                s,
                p,
                density,
                relu: true,
                residual: i % 2 == 1 && s == 1 && c == co,
            };
            let g = conv_graph(&case, &mut rng);
            let store = if density >= 1.0 {
                Store::Dense
            } else {
                Store::Csr(IndexEncoding::CsrGap8)
            };
            for value in [Value::F32, Value::I8] {
                check(
                    &g,
                    value,
                    store,
                    &mut rng,
                    &format!("{case:?} {value:?} {store:?}"),
                );
            }
        }
    }
}

/// Every way an input is staged: stride 1 with paddings of up to 6 (wider than one short pad store on every
/// path), rows narrower than 8 bytes, stride 2 with even and odd paddings and widths, and stride 3.
#[test]
fn every_staging_of_the_input() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let cases = [
        (3, 9, 11, 5, 7, 1, 6),
        (2, 6, 20, 3, 7, 1, 5),
        (2, 5, 1, 3, 3, 1, 1),
        (3, 4, 5, 2, 3, 1, 1),
        (5, 9, 13, 4, 3, 2, 1),
        (5, 10, 12, 4, 4, 2, 2),
        (4, 7, 9, 3, 3, 2, 0),
        (3, 11, 10, 2, 5, 3, 2),
    ];
    for &(c, h, w, co, k, s, p) in &cases {
        for (density, store) in [
            (0.3, Store::Csr(IndexEncoding::CsrGap8)),
            (1.0, Store::Dense),
        ] {
            let case = ConvCase {
                c,
                h,
                w,
                co,
                k,
                s,
                p,
                density,
                relu: false,
                residual: false,
            };
            let g = conv_graph(&case, &mut rng);
            for value in [Value::F32, Value::I8] {
                check(
                    &g,
                    value,
                    store,
                    &mut rng,
                    &format!("{case:?} {value:?} {store:?}"),
                );
            }
        }
    }
}

#[test]
fn random_gemms_every_value_type_and_encoding() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for i in 0..40 {
        let (c, h, w) = (
            rng.gen_range(1..=4),
            rng.gen_range(1..=9),
            rng.gen_range(1..=9),
        );
        let rows = [1, 3, 4, 5, 10, 17][rng.gen_range(0..6)];
        let density = [0.0, 0.05, 0.2, 0.7, 1.0][rng.gen_range(0..5)];
        let g = gemm_graph(c, h, w, rows, density, rng.gen_bool(0.5), &mut rng);
        let store = STORES[i % STORES.len()];
        for value in [Value::F32, Value::F16, Value::I8] {
            check(
                &g,
                value,
                store,
                &mut rng,
                &format!("gemm {i} {c}x{h}x{w}→{rows} d{density} {value:?} {store:?}"),
            );
        }
    }
}

#[test]
fn long_rows_take_several_chunks() {
    // 64 channels × 5 × 5 = 1600 columns: dense-ish sparse rows hold more entries (and int8 quads) than one
    // decoding chunk, so partial sums carry over between chunks.
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let case = ConvCase {
        c: 64,
        h: 6,
        w: 7,
        co: 3,
        k: 5,
        s: 1,
        p: 2,
        density: 0.9,
        relu: false,
        residual: false,
    };
    let g = conv_graph(&case, &mut rng);
    for store in [
        Store::Csr(IndexEncoding::Rice),
        Store::Csr(IndexEncoding::CsrIdx16),
    ] {
        for value in [Value::F32, Value::F16, Value::I8] {
            check(
                &g,
                value,
                store,
                &mut rng,
                &format!("long rows {value:?} {store:?}"),
            );
        }
    }
}

#[test]
fn a_missing_path_is_an_error_not_a_fallback() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let g = gemm_graph(1, 2, 2, 2, 1.0, false, &mut rng);
    let bytes = lower::scb(&g, [0; 32]).unwrap();
    let model = Model::parse(&bytes).unwrap();
    let mut arena = vec![0u8; model.arena_size() + 3];
    let mut y = [0.0f32; 2];
    for p in KernelPath::ALL {
        let r = model.run_on(p, &[0.5; 4], &mut arena, &mut y);
        assert_eq!(r.is_ok(), p.available(), "{}", p.name());
        if !p.available() {
            assert_eq!(r, Err(sculpt_runtime::RunError::PathUnavailable));
        }
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn gap8_fillers_for_long_gaps() {
    let cols = 700;
    let mut wt = vec![0.0f32; 2 * cols];
    wt[0] = 1.0;
    wt[256] = 2.0;
    wt[256 + 256 + 1] = 3.0;
    wt[cols + 699] = 4.0;
    let csr = CsrBytes::from_dense(2, cols, &f32_bytes(&wt), 4);
    let enc = csr.encode(IndexEncoding::CsrGap8).unwrap();
    assert_eq!(
        enc.nnz,
        4 + 1 + 2,
        "one filler in row 0 (gap 255), two in row 1"
    );
    let m = ScbModel {
        tensors: vec![TensorSpec {
            dtype: ValueType::F32,
            dims: vec![2, cols],
            data: enc,
            scales: None,
        }],
        buffers: vec![
            BufferSpec {
                dims: vec![cols],
                scale: 0.0,
            },
            BufferSpec {
                dims: vec![2],
                scale: 0.0,
            },
        ],
        ops: vec![OpSpec {
            weight: 0,
            ..OpSpec::simple(Opcode::Gemm, 0, 1)
        }],
        input: 0,
        output: 1,
        ..Default::default()
    };
    let bytes = m.to_bytes().unwrap();
    let model = Model::parse(&bytes).unwrap();
    let entries: Vec<_> = model.entries(0).map(|e| (e.row, e.col)).collect();
    assert_eq!(
        entries,
        vec![
            (0, 0),
            (0, 256),
            (0, 512),
            (0, 513),
            (1, 255),
            (1, 511),
            (1, 699)
        ]
    );
    let x: Vec<f32> = (0..cols).map(|i| i as f32).collect();
    let mut y = [0.0f32; 2];
    let mut arena = vec![0u8; model.arena_size() + 3];
    model.run(&x, &mut arena, &mut y).unwrap();
    assert_eq!(y, [0.0 + 2.0 * 256.0 + 3.0 * 513.0, 4.0 * 699.0]);
}

#[test]
fn batches_split_across_threads_give_the_per_sample_results() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let case = ConvCase {
        c: 3,
        h: 9,
        w: 7,
        co: 5,
        k: 3,
        s: 1,
        p: 1,
        density: 0.3,
        relu: true,
        residual: false,
    };
    let g = conv_graph(&case, &mut rng);
    let calib: Vec<f32> = images(&g, 8, &mut rng).concat();
    for typed in [g.clone(), quantize(&g, &calib).unwrap()] {
        let typed = restore(typed, Store::Csr(IndexEncoding::CsrGap8));
        let bytes = lower::scb(&typed, [1; 32]).unwrap();
        let model = Model::parse(&bytes).unwrap();
        let xs: Vec<f32> = images(&typed, 7, &mut rng).concat();
        let per_out = model.output_len();
        let mut want = vec![0.0f32; 7 * per_out];
        let mut arena = vec![0u8; model.arena_size() + 3];
        for (x, y) in xs.chunks(model.input_len()).zip(want.chunks_mut(per_out)) {
            model.run(x, &mut arena, y).unwrap();
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for threads in [1, 2, 3, 8] {
            let mut got = vec![f32::NAN; 7 * per_out];
            pool.install(|| run_batch(&model, &xs, &mut got, threads))
                .unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{threads} threads");
        }
        let mut short = vec![0.0f32; 6 * per_out];
        assert!(matches!(
            run_batch(&model, &xs, &mut short, 2),
            Err(sculpt_runtime::RunError::OutputLength { .. })
        ));
        let mut out = vec![0.0f32; 7 * per_out];
        assert!(matches!(
            run_batch(&model, &xs[1..], &mut out, 2),
            Err(sculpt_runtime::RunError::InputLength { .. })
        ));
    }
}

/// Max pooling after a convolution, on every path: the 2×2 stride-2 window (one vectorised row at a time)
/// on even and odd planes and the other windows and strides (the general loop), f32 and int8, with
/// negative and positive results (ReLU off and on).
#[test]
fn max_pooling_every_window_on_even_and_odd_planes() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let windows = [(2, 2), (2, 1), (3, 2), (3, 3), (1, 1)];
    for (i, &(h, w)) in [(28, 28), (10, 10), (9, 13), (5, 4), (2, 2), (3, 7)]
        .iter()
        .enumerate()
    {
        for &(kernel, stride) in &windows {
            if kernel > h || kernel > w {
                continue;
            }
            let c = [1, 3, 6, 17][i % 4];
            let mut g = Graph::new(input_spec(2, h, w));
            let conv = g
                .push(
                    "conv",
                    Op::Conv {
                        weight: Weight::dense(
                            vec![c, 2, 3, 3],
                            weights(&mut rng, c, 18, 0.3, true),
                        ),
                        bias: Some(Bias::F32(
                            (0..c).map(|_| rng.gen_range(-0.5..0.5)).collect(),
                        )),
                        stride: 1,
                        padding: 1,
                        relu: i % 2 == 1,
                    },
                    vec![0],
                )
                .unwrap();
            let pool = g
                .push("pool", Op::MaxPool { kernel, stride }, vec![conv])
                .unwrap();
            g.push("flatten", Op::Flatten, vec![pool]).unwrap();
            for value in [Value::F32, Value::I8] {
                let what = format!("pool {kernel}/{stride} on {c}x{h}x{w} {value:?}");
                check(
                    &g,
                    value,
                    Store::Csr(IndexEncoding::CsrGap8),
                    &mut rng,
                    &what,
                );
            }
        }
    }
}

/// Sparse float gemm rows sum their entries in storage order into four partial sums on every path, whether
/// the column codes are read in place (gap bytes, u16, u32) or decoded (Rice): rows of every length modulo
/// 4, empty rows included, give bit-identical logits across encodings and paths.
#[test]
fn sparse_float_gemm_rows_are_bit_identical_across_encodings_and_paths() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    for i in 0..16 {
        let (c, h, w) = (
            rng.gen_range(1..=3),
            rng.gen_range(1..=8),
            rng.gen_range(1..=8),
        );
        let rows = [1, 2, 5, 7, 13][i % 5];
        let density = [0.05, 0.3, 0.6, 0.9][i % 4];
        let g = gemm_graph(c, h, w, rows, density, i % 2 == 0, &mut rng);
        let x = images(&g, 1, &mut rng).pop().unwrap();
        let mut first: Option<Vec<u32>> = None;
        for enc in [
            IndexEncoding::CsrGap8,
            IndexEncoding::CsrIdx16,
            IndexEncoding::CsrIdx32,
            IndexEncoding::Rice,
        ] {
            let typed = restore(g.clone(), Store::Csr(enc));
            let bytes = lower::scb(&typed, [7; 32]).unwrap();
            let model = Model::parse(&bytes).unwrap();
            let mut arena = vec![0u8; model.arena_size() + 3];
            let mut y = vec![0.0f32; model.output_len()];
            for path in KernelPath::ALL.into_iter().filter(|p| p.available()) {
                model.run_on(path, &x, &mut arena, &mut y).unwrap();
                let bits: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
                match &first {
                    None => first = Some(bits),
                    Some(f) => assert_eq!(f, &bits, "gemm {i} {enc:?} on {}", path.name()),
                }
            }
        }
    }
}
