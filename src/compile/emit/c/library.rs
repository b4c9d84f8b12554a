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
}
