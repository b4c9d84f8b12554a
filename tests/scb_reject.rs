//! The reader rejects truncated files, flipped bits and each inconsistent field with its specific error, and
//! never panics on random bytes or mutations.

mod common_scb;

use common_scb::{small_resnet, Kind};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sculpt_runtime::crc::crc32;
use sculpt_runtime::format::{
    section, BUFFER_SIZE, GRAPH_HEADER_SIZE, HEADER_CRC_AT, OP_SIZE, TENSOR_SIZE,
};
use sculpt_runtime::{LoadError, Model};

fn valid(kind: Kind) -> Vec<u8> {
    small_resnet(kind, 0.3, 11).to_bytes().unwrap()
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

fn set_u32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}

/// (offset, length) of the section of `kind`.
fn section_of(b: &[u8], kind: u32) -> (usize, usize) {
    let n = u32_at(b, 24) as usize;
    let t = u32_at(b, 28) as usize;
    (0..n)
        .map(|i| t + 16 * i)
        .find(|&e| u32_at(b, e) == kind)
        .map(|e| (u32_at(b, e + 4) as usize, u32_at(b, e + 8) as usize))
        .unwrap()
}

/// Recomputes every section CRC and the header CRC, so that only the intended inconsistency remains.
fn fix_crcs(b: &mut [u8]) {
    let n = u32_at(b, 24) as usize;
    let t = u32_at(b, 28) as usize;
    for i in 0..n {
        let e = t + 16 * i;
        if e + 16 > b.len() {
            break;
        }
        let (o, l) = (u32_at(b, e + 4) as usize, u32_at(b, e + 8) as usize);
        if o + l <= b.len() {
            let c = crc32(&b[o..o + l]);
            set_u32(b, e + 12, c);
        }
    }
    let c = crc32(&b[..HEADER_CRC_AT]);
    set_u32(b, HEADER_CRC_AT, c);
}

fn reject(b: &[u8]) -> LoadError {
    match Model::parse(b) {
        Ok(_) => panic!("a malformed model was accepted"),
        Err(e) => e,
    }
}

fn mutated(kind: Kind, f: impl FnOnce(&mut Vec<u8>)) -> LoadError {
    let mut b = valid(kind);
    f(&mut b);
    fix_crcs(&mut b);
    reject(&b)
}

fn tensor_at(b: &[u8], i: usize) -> usize {
    section_of(b, section::TENSORS).0 + i * TENSOR_SIZE
}

fn op_at(b: &[u8], i: usize) -> usize {
    section_of(b, section::GRAPH).0 + GRAPH_HEADER_SIZE + i * OP_SIZE
}

/// Index of the first tensor with `encoding`.
fn tensor_with(b: &[u8], encoding: u8) -> usize {
    let (_, len) = section_of(b, section::TENSORS);
    (0..len / TENSOR_SIZE)
        .find(|&i| b[tensor_at(b, i) + 1] == encoding)
        .unwrap()
}

#[test]
fn valid_models_parse() {
    for k in [Kind::F32, Kind::F16, Kind::I8] {
        Model::parse(&valid(k)).unwrap();
    }
}

#[test]
fn truncation_at_every_length_is_rejected() {
    let b = valid(Kind::F32);
    for n in 0..b.len() {
        let e = reject(&b[..n]);
        assert!(
            matches!(e, LoadError::Truncated { .. }),
            "length {n}: {e:?}"
        );
    }
}

#[test]
fn a_flipped_bit_in_each_section_is_caught_by_its_crc() {
    let b = valid(Kind::I8);
    for kind in [
        section::TENSORS,
        section::BUFFERS,
        section::GRAPH,
        section::DATA,
    ] {
        let (o, l) = section_of(&b, kind);
        for at in [o, o + l / 2, o + l - 1] {
            let mut c = b.clone();
            c[at] ^= 0x10;
            assert!(
                matches!(reject(&c), LoadError::SectionCrc { kind: k, .. } if k == kind),
                "section {kind} byte {at}"
            );
        }
    }
    let mut c = b.clone();
    c[40] ^= 1;
    assert!(matches!(reject(&c), LoadError::HeaderCrc { .. }));
}

#[test]
fn header_fields() {
    assert_eq!(mutated(Kind::F32, |b| b[0] = b'X'), LoadError::BadMagic);
    assert_eq!(
        mutated(Kind::F32, |b| b[8] = 1),
        LoadError::UnsupportedVersion { major: 1, minor: 0 }
    );
    assert_eq!(
        mutated(Kind::F32, |b| set_u32(b, 12, 128)),
        LoadError::BadHeaderSize(128)
    );
    assert!(matches!(
        mutated(Kind::F32, |b| b.extend_from_slice(&[0; 16])),
        LoadError::FileSizeMismatch { .. }
    ));
    assert_eq!(
        mutated(Kind::F32, |b| b[23] |= 0x80),
        LoadError::UnknownFeature(0x8000_0000)
    );
    assert!(matches!(
        mutated(Kind::F32, |b| b[70] = 1),
        LoadError::ReservedNotZero { .. }
    ));
    assert_eq!(
        mutated(Kind::F32, |b| set_u32(b, 24, 1000)),
        LoadError::SectionTableOutOfBounds
    );
}

#[test]
fn section_table_fields() {
    let t = 96;
    assert_eq!(
        mutated(Kind::F32, |b| set_u32(b, t + 16 * 3 + 8, 1 << 30)),
        LoadError::SectionOutOfBounds {
            kind: section::DATA
        }
    );
    assert_eq!(
        mutated(Kind::F32, |b| {
            let o = u32_at(b, t + 4);
            set_u32(b, t + 4, o + 4)
        }),
        LoadError::SectionMisaligned {
            kind: section::TENSORS
        }
    );
    assert_eq!(
        mutated(Kind::F32, |b| set_u32(b, t + 16, 7)),
        LoadError::UnknownSection { kind: 7 }
    );
    assert_eq!(
        mutated(Kind::F32, |b| set_u32(b, t + 16, section::TENSORS)),
        LoadError::DuplicateSection {
            kind: section::TENSORS
        }
    );
    assert_eq!(
        mutated(Kind::F32, |b| { set_u32(b, t + 16, 0x8000_0009) }),
        LoadError::MissingSection {
            kind: section::BUFFERS
        }
    );
    assert_eq!(
        mutated(Kind::F32, |b| {
            let l = u32_at(b, t + 8);
            set_u32(b, t + 8, l - 4)
        }),
        LoadError::SectionLength {
            kind: section::TENSORS
        }
    );
}

#[test]
fn tensor_fields() {
    let f16 = sculpt_runtime::format::feature::F16;
    assert_eq!(
        mutated(Kind::F32, |b| {
            let o = tensor_at(b, 0);
            b[o] = 9
        }),
        LoadError::BadDtype { tensor: 0 }
    );
    assert_eq!(
        mutated(Kind::F32, |b| {
            let o = tensor_at(b, 0);
            b[o] = 1
        }),
        LoadError::FeatureNotDeclared(f16)
    );
    assert_eq!(
        mutated(Kind::F32, |b| {
            let o = tensor_at(b, 0);
            b[o + 1] = 9
        }),
        LoadError::BadEncoding { tensor: 0 }
    );
    assert_eq!(
        mutated(Kind::F32, |b| {
            let o = tensor_at(b, 0);
            b[o + 2] = 5
        }),
        LoadError::BadTensorShape { tensor: 0 }
    );
    assert_eq!(
        mutated(Kind::F32, |b| {
            let o = tensor_at(b, 1);
            set_u32(b, o + 4 + 4, 3)
        }),
        LoadError::BadTensorShape { tensor: 1 }
    );
    assert_eq!(
        mutated(Kind::F32, |b| {
            let o = tensor_at(b, 0);
            set_u32(b, o + 24, 1 << 28)
        }),
        LoadError::TensorDataOutOfBounds { tensor: 0 }
    );
    assert_eq!(
        mutated(Kind::I8, |b| {
            let o = tensor_at(b, 0);
            set_u32(b, o + 40, 0xFFFF_FFFF)
        }),
        LoadError::TensorDataOutOfBounds { tensor: 0 }
    );
}

#[test]
fn csr_fields() {
    let b0 = valid(Kind::F32);
    let gap8 = tensor_with(&b0, 1);
    let idx16 = tensor_with(&b0, 2);
    let data = |b: &[u8]| section_of(b, section::DATA).0;
    // An absolute index past the last column.
    assert_eq!(
        mutated(Kind::F32, |b| {
            let o = tensor_at(b, idx16);
            let at = data(b) + u32_at(b, o + 28) as usize;
            b[at..at + 2].copy_from_slice(&60000u16.to_le_bytes())
        }),
        LoadError::IndexOutOfRange {
            tensor: idx16 as u32
        }
    );
    // A gap that leaves the row.
    assert_eq!(
        mutated(Kind::F32, |b| {
            let o = tensor_at(b, gap8);
            let at = data(b) + u32_at(b, o + 28) as usize;
            b[at] = 250
        }),
        LoadError::IndexOutOfRange {
            tensor: gap8 as u32
        }
    );
    // Row pointers that go backwards.
    assert_eq!(
        mutated(Kind::F32, |b| {
            let o = tensor_at(b, gap8);
            let n = u32_at(b, o + 20);
            let at = data(b) + u32_at(b, o + 36) as usize + 4;
            set_u32(b, at, n)
        }),
        LoadError::NonMonotoneIndptr {
            tensor: gap8 as u32
        }
    );
    // Stored count disagreeing with the row pointers.
    assert_eq!(
        mutated(Kind::F32, |b| {
            let o = tensor_at(b, gap8);
            let n = u32_at(b, o + 20);
            set_u32(b, o + 20, n - 1);
            set_u32(b, o + 32, n - 1)
        }),
        LoadError::NnzMismatch {
            tensor: gap8 as u32
        }
    );
}

#[test]
fn rice_fields() {
    let b0 = valid(Kind::F32);
    let gap8 = tensor_with(&b0, 1) as u32;
    let rice = tensor_with(&b0, 4);
    let t = rice as u32;
    let data = |b: &[u8]| section_of(b, section::DATA).0;
    let stream = |b: &[u8]| {
        let o = tensor_at(b, rice);
        (
            data(b) + u32_at(b, o + 28) as usize,
            u32_at(b, o + 32) as usize,
        )
    };
    // A Rice parameter above 7, and a parameter on an encoding without one.
    assert_eq!(
        mutated(Kind::F32, |b| {
            let o = tensor_at(b, rice);
            b[o + 3] = 8
        }),
        LoadError::BadEncodingParam { tensor: t }
    );
    assert_eq!(
        mutated(Kind::F32, |b| {
            let o = tensor_at(b, gap8 as usize);
            b[o + 3] = 1
        }),
        LoadError::BadEncodingParam { tensor: gap8 }
    );
    // A last code that runs past the stream.
    assert_eq!(
        mutated(Kind::F32, |b| {
            let o = tensor_at(b, rice);
            let n = u32_at(b, o + 32);
            set_u32(b, o + 32, n - 1)
        }),
        LoadError::BadIndexStream { tensor: t }
    );
    // One value more than the stream codes.
    assert_eq!(
        mutated(Kind::F32, |b| {
            let o = tensor_at(b, rice);
            let n = u32_at(b, o + 20);
            set_u32(b, o + 20, n + 1)
        }),
        LoadError::BadIndexStream { tensor: t }
    );
    // A stream longer than its codes.
    assert_eq!(
        mutated(Kind::F32, |b| {
            let o = tensor_at(b, rice);
            let n = u32_at(b, o + 32);
            set_u32(b, o + 32, n + 1)
        }),
        LoadError::BadIndexStream { tensor: t }
    );
    // A nonzero bit after the stream in its last byte.
    let (_, n) = stream(&b0);
    assert_ne!(n % 8, 0, "the test model's stream ends inside a byte");
    assert_eq!(
        mutated(Kind::F32, |b| {
            let (at, n) = stream(b);
            b[at + n / 8] |= 0x80
        }),
        LoadError::BadIndexStream { tensor: t }
    );
    // Positions past the end of the tensor: one row fewer.
    assert_eq!(
        mutated(Kind::F32, |b| {
            let o = tensor_at(b, rice);
            let rows = u32_at(b, o + 4);
            set_u32(b, o + 4, rows - 1)
        }),
        LoadError::IndexOutOfRange { tensor: t }
    );
    // A stream that leaves the data section.
    assert_eq!(
        mutated(Kind::F32, |b| {
            let o = tensor_at(b, rice);
            set_u32(b, o + 32, u32::MAX)
        }),
        LoadError::TensorDataOutOfBounds { tensor: t }
    );
}

#[test]
fn buffer_and_graph_fields() {
    let bufs = |b: &[u8]| section_of(b, section::BUFFERS).0;
    assert_eq!(
        mutated(Kind::F32, |b| {
            let o = bufs(b);
            b[o + 4] = 2
        }),
        LoadError::BadBuffer { buffer: 0 }
    );
    assert_eq!(
        mutated(Kind::F32, |b| {
            let o = bufs(b) + BUFFER_SIZE;
            set_u32(b, o, 1 << 20)
        }),
        LoadError::ArenaTooSmall { buffer: 1 }
    );
    assert_eq!(
        mutated(Kind::F32, |b| {
            let a = u32_at(b, 64);
            set_u32(b, 64, a / 2)
        })
        .clone(),
        reject_arena_small()
    );
    assert_eq!(
        mutated(Kind::F32, |b| {
            let o = op_at(b, 0);
            b[o] = 99
        }),
        LoadError::UnknownOpcode { op: 0 }
    );
    assert_eq!(
        mutated(Kind::F32, |b| {
            let o = op_at(b, 0);
            set_u32(b, o + 16, 999)
        }),
        LoadError::BadReference { op: 0 }
    );
    assert_eq!(
        mutated(Kind::F32, |b| {
            let o = op_at(b, 0);
            b[o + 28] = 5
        }),
        LoadError::BadShape { op: 0 }
    );
    assert_eq!(
        mutated(Kind::F32, |b| {
            let o = op_at(b, 0);
            b[o + 29] = 0
        }),
        LoadError::BadParams { op: 0 }
    );
    assert_eq!(
        mutated(Kind::F32, |b| {
            let o = op_at(b, 1);
            set_u32(b, o + 4, 5)
        }),
        LoadError::BadShape { op: 1 }
    );
    assert_eq!(
        mutated(Kind::I8, |b| {
            let o = op_at(b, 0);
            let t = u32_at(b, o + 20);
            set_u32(b, o + 16, t)
        }),
        LoadError::TypeMismatch { op: 0 }
    );
    // An op reading a buffer that no earlier op wrote.
    assert_eq!(
        mutated(Kind::F32, |b| {
            let o = op_at(b, 0);
            let last = u32_at(b, op_at(b, 9) + 12);
            set_u32(b, o + 4, last - 1)
        })
        .clone(),
        LoadError::BadShape { op: 0 }
    );
    assert_eq!(
        mutated(Kind::F32, |b| {
            let o = op_at(b, 1);
            let out0 = u32_at(b, op_at(b, 0) + 12);
            set_u32(b, o + 12, out0)
        }),
        LoadError::BadShape { op: 1 }
    );
}

fn reject_arena_small() -> LoadError {
    let mut b = valid(Kind::F32);
    let a = u32_at(&b, 64);
    set_u32(&mut b, 64, a / 2);
    fix_crcs(&mut b);
    let e = reject(&b);
    assert!(matches!(e, LoadError::ArenaTooSmall { .. }), "{e:?}");
    e
}

#[test]
fn arena_overlap_and_dataflow() {
    // Place the second conv's output on top of the first conv's output, which the shortcut still reads.
    let e = mutated(Kind::F32, |b| {
        let bufs = section_of(b, section::BUFFERS).0;
        let out0 = u32_at(b, op_at(b, 0) + 12) as usize;
        let out1 = u32_at(b, op_at(b, 1) + 12) as usize;
        let off = u32_at(b, bufs + out0 * BUFFER_SIZE);
        set_u32(b, bufs + out1 * BUFFER_SIZE, off);
    });
    assert_eq!(e, LoadError::ArenaOverlap { op: 1 });
    // Graph output never written.
    let e = mutated(Kind::F32, |b| {
        let g = section_of(b, section::GRAPH).0;
        set_u32(b, g + 4, 2);
    });
    assert!(
        matches!(
            e,
            LoadError::BadDataflow { .. } | LoadError::ArenaOverlap { .. }
        ),
        "{e:?}"
    );
    // Normalisation declared without arrays.
    let e = mutated(Kind::F32, |b| {
        let g = section_of(b, section::GRAPH).0;
        set_u32(b, g + 16, 0xFFFF_FFFF);
    });
    assert_eq!(e, LoadError::BadNormalization);
}

#[test]
fn fuzz_random_bytes_and_mutations_never_panic() {
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let base = valid(Kind::I8);
    let mut accepted = 0;
    for round in 0..3000 {
        let mut b = base.clone();
        match round % 4 {
            0 => {
                for _ in 0..rng.gen_range(1..8) {
                    let i = rng.gen_range(0..b.len());
                    b[i] = rng.gen();
                }
                if round % 8 == 0 {
                    fix_crcs(&mut b);
                }
            }
            1 => {
                let n = rng.gen_range(0..b.len());
                b.truncate(n);
            }
            2 => {
                b = (0..rng.gen_range(0..600)).map(|_| rng.gen()).collect();
                if b.len() >= 96 {
                    b[..8].copy_from_slice(&sculpt_runtime::format::MAGIC);
                }
            }
            _ => {
                let i = rng.gen_range(96..b.len() - 4);
                let v: u32 = if rng.gen_bool(0.5) {
                    rng.gen_range(0..64)
                } else {
                    rng.gen()
                };
                set_u32(&mut b, i & !3, v);
                fix_crcs(&mut b);
            }
        }
        if let Ok(m) = Model::parse(&b) {
            accepted += 1;
            let mut arena = vec![0u8; m.arena_size() + 3];
            let x = vec![0.5f32; m.input_len()];
            let mut y = vec![0.0f32; m.output_len()];
            m.run(&x, &mut arena, &mut y).unwrap();
        }
    }
    assert!(accepted < 3000);
}
