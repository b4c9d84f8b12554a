//! The generated C compiles warning-free with `cc -std=c99 -Wall -Wextra -Werror -pedantic` and a harness
//! running it agrees with the runtime: bit for bit on int8 models, within 1e-5 on float models.

mod common_scb;

use std::process::Command;

use common_scb::{inputs, small_resnet, Kind};
use sculpt::compile::emit::c::emit_c;
use sculpt_runtime::Model;

const HARNESS: &str = r#"
#include <stdio.h>
#include "model.h"
int main(int argc, char **argv)
{
    static float in[SCULPT_MODEL_INPUT_LEN];
    static float out[SCULPT_MODEL_OUTPUT_LEN];
    FILE *fi, *fo;
    if (argc != 3) {
        return 2;
    }
    fi = fopen(argv[1], "rb");
    fo = fopen(argv[2], "wb");
    if (!fi || !fo) {
        return 3;
    }
    while (fread(in, sizeof(float), SCULPT_MODEL_INPUT_LEN, fi) == SCULPT_MODEL_INPUT_LEN) {
        sculpt_model_run(in, out);
        fwrite(out, sizeof(float), SCULPT_MODEL_OUTPUT_LEN, fo);
    }
    fclose(fi);
    fclose(fo);
    return 0;
}
"#;

fn check(kind: Kind, density: f64, seed: u64) {
    let m = small_resnet(kind, density, seed);
    let bytes = m.to_bytes().unwrap();
    let model = Model::parse(&bytes).unwrap();
    let src = emit_c(&m).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.h"), &src.header).unwrap();
    std::fs::write(dir.path().join("model.c"), &src.source).unwrap();
    std::fs::write(dir.path().join("main.c"), HARNESS).unwrap();
    let exe = dir.path().join("harness");
    let out = Command::new("cc")
        .args([
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-O2",
            "-ffp-contract=off",
            "-o",
        ])
        .arg(&exe)
        .arg(dir.path().join("model.c"))
        .arg(dir.path().join("main.c"))
        .output()
        .expect("cc runs");
    assert!(
        out.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "cc warned:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let xs = inputs(16, model.input_len(), seed + 1);
    let flat: Vec<u8> = xs.iter().flatten().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.path().join("in.bin"), flat).unwrap();
    let st = Command::new(&exe)
        .arg(dir.path().join("in.bin"))
        .arg(dir.path().join("out.bin"))
        .status()
        .unwrap();
    assert!(st.success());
    let got: Vec<f32> = std::fs::read(dir.path().join("out.bin"))
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(got.len(), 16 * model.output_len());
    let mut arena = vec![0u8; model.arena_size() + 3];
    let mut y = vec![0.0f32; model.output_len()];
    let mut nonzero = 0;
    for (x, c_out) in xs.iter().zip(got.chunks(model.output_len())) {
        model.run(x, &mut arena, &mut y).unwrap();
        for (a, b) in y.iter().zip(c_out) {
            if kind == Kind::I8 {
                assert_eq!(a.to_bits(), b.to_bits(), "int8 model: runtime {a} vs C {b}");
            } else {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + a.abs()),
                    "runtime {a} vs C {b}"
                );
            }
            nonzero += usize::from(*a != 0.0);
        }
    }
    assert!(nonzero > 16, "outputs are not trivially zero");
}

#[test]
fn c_matches_runtime_f32_dense_and_sparse() {
    check(Kind::F32, 1.0, 1);
    check(Kind::F32, 0.1, 2);
}

#[test]
fn c_matches_runtime_f16() {
    check(Kind::F16, 0.3, 3);
}

#[test]
fn c_matches_runtime_int8_bit_exact() {
    check(Kind::I8, 1.0, 4);
    check(Kind::I8, 0.05, 5);
}
