//! The worked examples of formats/scb.md parse and compute what the text says.

use sculpt::compile::emit::binary::{CsrBytes, IndexEncoding};
use sculpt_runtime::Model;

fn spec() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/formats/scb.md"))
        .expect("formats/scb.md")
}

fn hex_blocks(text: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut cur: Option<Vec<u8>> = None;
    for line in text.lines() {
        match (&mut cur, line.trim()) {
            (None, "```hex") => cur = Some(Vec::new()),
            (Some(_), "```") => out.push(cur.take().unwrap()),
            (Some(bytes), l) => {
                let body = l.split_once(':').map_or(l, |(_, b)| b);
                bytes.extend(
                    body.split_whitespace()
                        .map(|h| u8::from_str_radix(h, 16).expect("hex byte")),
                );
            }
            _ => {}
        }
    }
    out
}

fn floats_after(text: &str, label: &str) -> Vec<f32> {
    let at = text
        .find(label)
        .unwrap_or_else(|| panic!("'{label}' in the spec"))
        + label.len();
    let rest = &text[at..];
    let list = &rest[rest.find('[').unwrap() + 1..rest.find(']').unwrap()];
    list.split(',').map(|v| v.trim().parse().unwrap()).collect()
}

#[test]
fn worked_example_parses_and_runs() {
    let text = spec();
    let blocks = hex_blocks(&text);
    assert_eq!(blocks.len(), 1, "one hex example");
    let bytes = &blocks[0];
    let model = Model::parse(bytes).expect("the example is a valid model");
    assert_eq!(model.arena_size(), 32);
    assert_eq!(model.tensor_count(), 2);
    assert_eq!(model.tensor(0).nnz, 3);
    let input = floats_after(&text, "Example input:");
    let expected = floats_after(&text, "Expected output:");
    let mut out = vec![0.0f32; model.output_len()];
    let mut arena = vec![0u8; model.arena_size() + 3];
    model.run(&input, &mut arena, &mut out).unwrap();
    assert_eq!(out, expected);
}

#[test]
fn rice_example_matches_the_encoder() {
    let w: Vec<u8> = [0.0f32, 1.5, 0.0, -2.0, 0.5, 0.0, 0.0, 0.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let enc = CsrBytes::from_dense(2, 4, &w, 4)
        .encode(IndexEncoding::Rice)
        .unwrap();
    assert_eq!(enc.index, vec![0x1a]);
    assert_eq!(enc.index_len, 5);
    assert_eq!(enc.param, 0);
    assert!(spec().contains("byte `1a`, index length 5"));
}
