//! The C helper library the emitted model calls: types, weight iteration, int8 arithmetic and one kernel
//! per op and value type, kept as C in `library/*.c`. Each function follows a marker `/*@name*/`; a model
//! gets only the functions it calls, in the files' order (which is their dependency order).

const PARTS: [&str; 3] = [
    include_str!("library/kernels.c"),
    include_str!("library/pools_f32.c"),
    include_str!("library/pools_i8.c"),
];

/// The functions named in `want`, in library order, each without trailing white space and ending in a
/// newline. A name the library lacks contributes nothing.
pub fn select(want: &[String]) -> String {
    let mut out = String::new();
    for part in PARTS {
        for piece in part.split("/*@").skip(1) {
            let (name, body) = piece.split_once("*/").expect("library marker /*@name*/");
            if want.iter().any(|w| w == name) {
                out.push_str(body.trim_end());
                out.push('\n');
            }
        }
    }
    out
}

/// Whether the library defines a function `name`.
pub fn defines(name: &str) -> bool {
    PARTS.iter().any(|p| p.contains(&format!("/*@{name}*/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_keeps_library_order_and_only_what_is_asked() {
        let got = select(&["sc_gemm_f32".into(), "sc_types".into()]);
        let (t, g) = (
            got.find("} sc_tensor;").unwrap(),
            got.find("static void sc_gemm_f32(").unwrap(),
        );
        assert!(t < g, "types come before the kernels that use them");
        assert!(!got.contains("sc_gemm_i8"));
        assert_eq!(select(&["no_such_function".into()]), "");
        assert!(defines("sc_relu_i8") && !defines("sc_relu_f16"));
    }

    /// A main over the library's int8 arithmetic: reads `acc m sh relu a ma b mb ash` lines and prints, per
    /// line, sc_requantize, the per-row form (sc_rq_apply, and sc_rq_hi where sh > 32), sc_add_q and sc_add_r.
    const ARITH_MAIN: &str = r#"
int main(void)
{
    long acc, m, sh, relu, a, ma, b, mb, ash;
    while (scanf("%ld %ld %ld %ld %ld %ld %ld %ld %ld", &acc, &m, &sh, &relu, &a, &ma, &b, &mb, &ash) == 9) {
        sc_rq q;
        int32_t lo = relu ? 0 : -128;
        int32_t rnd = ash > 0 ? (int32_t)1 << (ash - 1) : 0;
        sc_rq_init(&q, (int32_t)m, (int32_t)sh);
        printf("%d %d %d %d %d\n", sc_requantize((int32_t)acc, (int32_t)m, (int32_t)sh, (int)relu),
               sc_rq_apply(&q, (int32_t)acc, lo),
               sh > 32 ? (int)sc_rq_hi((int32_t)acc, q.m, q.r32, q.n, lo) : (int)sc_rq_apply(&q, (int32_t)acc, lo),
               sc_add_q((int8_t)a, (int32_t)ma, (int8_t)b, (int32_t)mb, (int32_t)ash, (int)relu),
               sc_add_r((int32_t)a, (int32_t)ma, (int8_t)b, (int32_t)mb, rnd, (int32_t)ash, lo));
    }
    return 0;
}
"#;

    #[test]
    fn the_int8_arithmetic_in_c_equals_the_runtimes() {
        use sculpt_runtime::quant::{
            add, requantize, MAX_ADD_MULTIPLIER, MAX_ADD_SHIFT, MAX_SHIFT,
        };
        use std::io::Write as _;
        let want: Vec<String> = [
            "sc_shift_round",
            "sc_saturate",
            "sc_requantize",
            "sc_add_q",
            "sc_requant_row",
        ]
        .map(String::from)
        .to_vec();
        let src = format!(
            "#include <stdint.h>\n#include <stdio.h>\n#define SCULPT_ARM_DSP 0\n{}{ARITH_MAIN}",
            select(&want)
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("arith.c"), src).unwrap();
        let exe = dir.path().join("arith");
        let out = std::process::Command::new("cc")
            .args([
                "-std=c99",
                "-O2",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-pedantic",
                "-o",
            ])
            .arg(&exe)
            .arg(dir.path().join("arith.c"))
            .output()
            .expect("cc runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut bits = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            bits ^= bits << 13;
            bits ^= bits >> 7;
            bits ^= bits << 17;
            bits % n
        };
        let mut cases = Vec::new();
        for i in 0..6000u64 {
            let sh = (i % (MAX_SHIFT as u64 + 1)) as u32;
            let m = next(1 << 31) as i32;
            let acc = match i % 4 {
                0 => i32::MAX - next(4) as i32,
                1 => i32::MIN + next(4) as i32,
                _ => next(1 << 32) as u32 as i32,
            };
            let ash = next(MAX_ADD_SHIFT as u64 + 1) as u32;
            let ma = next(MAX_ADD_MULTIPLIER as u64 + 1) as i32;
            let mb = if i % 7 == 0 {
                MAX_ADD_MULTIPLIER
            } else {
                next(MAX_ADD_MULTIPLIER as u64 + 1) as i32
            };
            let (a, b) = if i % 5 == 0 {
                (-128i8, -128i8)
            } else {
                (next(256) as u8 as i8, next(256) as u8 as i8)
            };
            cases.push((acc, m, sh, i % 3 == 0, a, ma, b, mb, ash));
        }
        let mut input = Vec::new();
        for &(acc, m, sh, relu, a, ma, b, mb, ash) in &cases {
            writeln!(
                input,
                "{acc} {m} {sh} {} {a} {ma} {b} {mb} {ash}",
                u8::from(relu)
            )
            .unwrap();
        }
        std::fs::write(dir.path().join("cases.txt"), &input).unwrap();
        let out = std::process::Command::new(&exe)
            .stdin(std::fs::File::open(dir.path().join("cases.txt")).unwrap())
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), cases.len());
        for (line, &(acc, m, sh, relu, a, ma, b, mb, ash)) in lines.iter().zip(&cases) {
            let q = requantize(acc, m, sh, relu) as i32;
            let s = add(a, ma, b, mb, ash, relu) as i32;
            let got: Vec<i32> = line.split(' ').map(|v| v.parse().unwrap()).collect();
            assert_eq!(
                got,
                vec![q, q, q, s, s],
                "acc {acc} m {m} sh {sh} relu {relu}; add {a} {ma} {b} {mb} {ash}"
            );
        }
    }
}
