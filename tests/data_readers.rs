//! Dataset readers, splits, orders, augmentation and normalisation, checked against independently written files
//! and the definitions in the module docs.

use std::io::Write;
use std::path::Path;

use sculpt::data::{
    self, augment, batch_seed, epoch_order, make_batch, Augment, DataSource, Dataset, Draw,
    Normalization,
};

// ---------- independent writers ----------

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8, 0, 0x08, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn put(dir: &Path, name: &str, bytes: &[u8], compress: bool) {
    std::fs::create_dir_all(dir).unwrap();
    if compress {
        std::fs::write(dir.join(format!("{name}.gz")), gz(bytes)).unwrap();
    } else {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// A deterministic pseudo-random byte sequence (xorshift), independent of the library's generators.
fn bytes(n: usize, mut s: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

struct IdxSet {
    train_images: Vec<u8>,
    train_labels: Vec<u8>,
    test_images: Vec<u8>,
    test_labels: Vec<u8>,
}

const ROWS: usize = 4;
const COLS: usize = 3;

fn idx_set() -> IdxSet {
    IdxSet {
        train_images: bytes(7 * ROWS * COLS, 1),
        train_labels: vec![0, 9, 3, 3, 1, 5, 7],
        test_images: bytes(3 * ROWS * COLS, 2),
        test_labels: vec![2, 0, 8],
    }
}

/// Writes the four IDX files; `compress[i]` selects `.gz` for file i (train images, train labels, test images,
/// test labels).
fn write_idx(dir: &Path, s: &IdxSet, compress: [bool; 4]) {
    let (r, c) = (ROWS as u32, COLS as u32);
    put(
        dir,
        "train-images-idx3-ubyte",
        &idx_bytes(&[s.train_labels.len() as u32, r, c], &s.train_images),
        compress[0],
    );
    put(
        dir,
        "train-labels-idx1-ubyte",
        &idx_bytes(&[s.train_labels.len() as u32], &s.train_labels),
        compress[1],
    );
    put(
        dir,
        "t10k-images-idx3-ubyte",
        &idx_bytes(&[s.test_labels.len() as u32, r, c], &s.test_images),
        compress[2],
    );
    put(
        dir,
        "t10k-labels-idx1-ubyte",
        &idx_bytes(&[s.test_labels.len() as u32], &s.test_labels),
        compress[3],
    );
}

fn check_idx(splits: &data::Splits, s: &IdxSet) {
    for (ds, images, labels) in [
        (&splits.train, &s.train_images, &s.train_labels),
        (&splits.test, &s.test_images, &s.test_labels),
    ] {
        assert_eq!(ds.shape, [1, ROWS, COLS]);
        assert_eq!(ds.classes, 10);
        assert_eq!(&ds.images, images);
        assert_eq!(
            ds.labels,
            labels.iter().map(|&l| l as u32).collect::<Vec<_>>()
        );
    }
}

/// One CIFAR record: label bytes then 3072 pixels.
fn cifar_record(labels: &[u8], seed: u64) -> (Vec<u8>, Vec<u8>) {
    let pixels = bytes(3072, seed);
    let mut r = labels.to_vec();
    r.extend_from_slice(&pixels);
    (r, pixels)
}

fn err_of(source: DataSource) -> String {
    match data::load(&source) {
        Ok(_) => panic!("{source:?} loaded but should fail"),
        Err(e) => e.to_string(),
    }
}

// ---------- embedded ----------

#[test]
fn embedded_set_has_the_documented_sizes_and_class_counts() {
    let s = data::load(&DataSource::Embedded).unwrap();
    assert_eq!(s.train.len(), 8004);
    assert_eq!(s.test.len(), 1996);
    assert_eq!(s.train.shape, [1, 28, 28]);
    assert_eq!(s.train.classes, 10);
    assert_eq!(s.train.images.len(), 8004 * 784);
    assert_eq!(
        s.test.class_counts(),
        vec![200, 225, 198, 206, 196, 172, 202, 214, 188, 195]
    );
    assert_eq!(s.train.class_counts().iter().sum::<usize>(), 8004);
    // The per-class split of the README: every fifth sample of a class is in the test set.
    for (tr, te) in s.train.class_counts().iter().zip(s.test.class_counts()) {
        assert_eq!((tr + te) / 5, te, "train {tr} test {te}");
    }
}

#[test]
fn embedded_set_equals_the_files_on_disk() {
    let embedded = data::load(&DataSource::Embedded).unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist10k");
    let disk = data::load(&DataSource::Idx { dir: dir.clone() }).unwrap();
    assert_eq!(embedded.train.images, disk.train.images);
    assert_eq!(embedded.test.labels, disk.test.labels);
    // Independent decode: gunzip with flate2 directly and skip the 16-byte header.
    let raw = std::fs::read(dir.join("t10k-images-idx3-ubyte.gz")).unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(raw.as_slice()), &mut out)
        .unwrap();
    assert_eq!(&out[..4], &[0, 0, 8, 3]);
    assert_eq!(&out[16..], embedded.test.images.as_slice());
}

// ---------- round trips ----------

#[test]
fn idx_round_trip_plain_gz_mixed_and_raw_subdir() {
    let s = idx_set();
    let tmp = tempfile::tempdir().unwrap();
    let layouts = [
        ("plain", [false; 4]),
        ("gz", [true; 4]),
        ("mixed", [true, false, false, true]),
    ];
    for (name, compress) in layouts {
        let dir = tmp.path().join(name);
        write_idx(&dir, &s, compress);
        let splits = data::load(&DataSource::Idx { dir }).unwrap();
        check_idx(&splits, &s);
        assert_eq!(splits.train.name, name);
    }
    let parent = tmp.path().join("torchvision");
    write_idx(&parent.join("raw"), &s, [true; 4]);
    check_idx(&data::load(&DataSource::Idx { dir: parent }).unwrap(), &s);
}

#[test]
fn cifar10_round_trip_in_dir_and_subdir() {
    let tmp = tempfile::tempdir().unwrap();
    for (root, sub, compress) in [
        ("a", None, false),
        ("b", Some("cifar-10-batches-bin"), true),
    ] {
        let dir = tmp.path().join(root);
        let files = dir.join(sub.unwrap_or(""));
        let mut train_pixels = Vec::new();
        let mut train_labels = Vec::new();
        for b in 1..=5u8 {
            let mut file = Vec::new();
            for k in 0..2u8 {
                let label = (b * 2 + k) % 10;
                let (rec, px) = cifar_record(&[label], u64::from(b * 10 + k) + 1);
                file.extend(rec);
                train_pixels.extend(px);
                train_labels.push(u32::from(label));
            }
            put(
                &files,
                &format!("data_batch_{b}.bin"),
                &file,
                compress && b == 3,
            );
        }
        let (test_file, test_pixels) = cifar_record(&[9], 99);
        put(&files, "test_batch.bin", &test_file, compress);
        let s = data::load(&DataSource::Cifar10 { dir }).unwrap();
        assert_eq!(s.train.shape, [3, 32, 32]);
        assert_eq!(s.train.classes, 10);
        assert_eq!(s.train.images, train_pixels);
        assert_eq!(s.train.labels, train_labels);
        assert_eq!(s.test.images, test_pixels);
        assert_eq!(s.test.labels, vec![9]);
    }
}

#[test]
fn cifar100_round_trip_fine_and_coarse() {
    let tmp = tempfile::tempdir().unwrap();
    let files = tmp.path().join("cifar-100-binary");
    let mut train = Vec::new();
    let mut pixels = Vec::new();
    let pairs = [(3u8, 77u8), (19, 0), (0, 99)];
    for (i, (coarse, fine)) in pairs.iter().enumerate() {
        let (rec, px) = cifar_record(&[*coarse, *fine], i as u64 + 5);
        train.extend(rec);
        pixels.extend(px);
    }
    put(&files, "train.bin", &train, false);
    put(&files, "test.bin", &cifar_record(&[4, 42], 50).0, true);
    let dir = tmp.path().to_path_buf();
    let fine = data::load(&DataSource::Cifar100 {
        dir: dir.clone(),
        coarse: false,
    })
    .unwrap();
    assert_eq!(fine.train.classes, 100);
    assert_eq!(fine.train.labels, vec![77, 0, 99]);
    assert_eq!(fine.train.images, pixels);
    assert_eq!(fine.test.labels, vec![42]);
    let coarse = data::load(&DataSource::Cifar100 { dir, coarse: true }).unwrap();
    assert_eq!(coarse.train.classes, 20);
    assert_eq!(coarse.train.labels, vec![3, 19, 0]);
    assert_eq!(coarse.test.labels, vec![4]);
}

#[test]
fn data_source_serde_round_trip() {
    let sources = [
        DataSource::Embedded,
        DataSource::Idx {
            dir: "fashion".into(),
        },
        DataSource::Cifar10 { dir: "c10".into() },
        DataSource::Cifar100 {
            dir: "c100".into(),
            coarse: true,
        },
    ];
    for s in &sources {
        let t = toml::to_string(s).unwrap();
        assert_eq!(&toml::from_str::<DataSource>(&t).unwrap(), s, "{t}");
    }
    let c: DataSource = toml::from_str("kind = \"cifar100\"\ndir = \"x\"").unwrap();
    assert_eq!(
        c,
        DataSource::Cifar100 {
            dir: "x".into(),
            coarse: false
        }
    );
    assert!(toml::from_str::<DataSource>("kind = \"idx\"\ndir = \"x\"\nextra = 1").is_err());
    assert!(toml::from_str::<DataSource>("kind = \"svhn\"").is_err());
    let a: Augment = toml::from_str("crop_padding = 4\nhflip = true").unwrap();
    assert_eq!(
        a,
        Augment {
            crop_padding: 4,
            hflip: true
        }
    );
    assert!(toml::from_str::<Augment>("crop = 4").is_err());
}

// ---------- malformed files ----------

/// Writes a valid IDX set into `dir`, then lets `spoil` break it; the load must fail naming `file`.
fn idx_fails(tag: &str, spoil: impl Fn(&Path), file: &str, problem: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(tag);
    write_idx(&dir, &idx_set(), [false, false, false, true]);
    spoil(&dir);
    let err = err_of(DataSource::Idx { dir });
    assert!(err.contains(file), "{tag}: `{err}` does not name {file}");
    assert!(
        err.to_lowercase().contains(problem),
        "{tag}: `{err}` does not say {problem}"
    );
}

#[test]
fn malformed_idx_files_are_errors_naming_the_file() {
    let s = idx_set();
    let w =
        |name: &'static str, b: Vec<u8>| move |d: &Path| std::fs::write(d.join(name), &b).unwrap();
    idx_fails(
        "missing",
        |d| std::fs::remove_file(d.join("t10k-images-idx3-ubyte")).unwrap(),
        "t10k-images-idx3-ubyte",
        "missing",
    );
    let mut truncated = idx_bytes(&[7, 4, 3], &s.train_images);
    truncated.truncate(truncated.len() - 5);
    idx_fails(
        "truncated",
        w("train-images-idx3-ubyte", truncated),
        "train-images-idx3-ubyte",
        "truncated",
    );
    idx_fails(
        "short-header",
        w("train-labels-idx1-ubyte", vec![0, 0, 8]),
        "train-labels-idx1-ubyte",
        "truncated",
    );
    let mut magic = idx_bytes(&[7, 4, 3], &s.train_images);
    magic[2] = 0x0d;
    idx_fails(
        "magic",
        w("train-images-idx3-ubyte", magic),
        "train-images-idx3-ubyte",
        "magic",
    );
    idx_fails(
        "labels-as-images",
        w("train-images-idx3-ubyte", idx_bytes(&[7], &s.train_labels)),
        "train-images-idx3-ubyte",
        "magic",
    );
    idx_fails(
        "zero-dim",
        w("train-images-idx3-ubyte", idx_bytes(&[7, 0, 3], &[])),
        "train-images-idx3-ubyte",
        "dims",
    );
    idx_fails(
        "test-dims",
        w(
            "t10k-images-idx3-ubyte",
            idx_bytes(&[3, 3, 4], &s.test_images),
        ),
        "t10k-images-idx3-ubyte",
        "dims",
    );
    idx_fails(
        "count",
        w(
            "train-labels-idx1-ubyte",
            idx_bytes(&[6], &s.train_labels[..6]),
        ),
        "train-labels-idx1-ubyte",
        "mismatch",
    );
    idx_fails(
        "label",
        w(
            "train-labels-idx1-ubyte",
            idx_bytes(&[7], &[0, 1, 2, 10, 4, 5, 6]),
        ),
        "train-labels-idx1-ubyte",
        "out of range",
    );
    idx_fails(
        "gzip",
        |d: &Path| {
            let p = d.join("t10k-labels-idx1-ubyte.gz");
            let mut b = std::fs::read(&p).unwrap();
            b.truncate(b.len() - 6);
            std::fs::write(&p, b).unwrap();
        },
        "t10k-labels-idx1-ubyte.gz",
        "gzip",
    );
    idx_fails(
        "gzip-flipped",
        |d: &Path| {
            let p = d.join("t10k-labels-idx1-ubyte.gz");
            let mut b = std::fs::read(&p).unwrap();
            let n = b.len();
            b[n - 9] ^= 0xff;
            std::fs::write(&p, b).unwrap();
        },
        "t10k-labels-idx1-ubyte.gz",
        "gzip",
    );
}

#[test]
fn directories_without_the_files_are_errors_naming_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty-dir");
    std::fs::create_dir(&empty).unwrap();
    let absent = tmp.path().join("no-such-dir");
    for source in [
        DataSource::Idx { dir: empty.clone() },
        DataSource::Cifar10 { dir: empty.clone() },
        DataSource::Cifar100 {
            dir: empty.clone(),
            coarse: false,
        },
    ] {
        let err = err_of(source);
        assert!(err.contains("empty-dir") && err.contains("lacks"), "{err}");
    }
    let err = err_of(DataSource::Cifar10 { dir: absent });
    assert!(
        err.contains("no-such-dir") && err.contains("not a directory"),
        "{err}"
    );
}

#[test]
fn malformed_cifar_files_are_errors_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let make = |tag: &str| {
        let dir = tmp.path().join(tag);
        for b in 1..=5 {
            put(
                &dir,
                &format!("data_batch_{b}.bin"),
                &cifar_record(&[b], 1).0,
                false,
            );
        }
        put(&dir, "test_batch.bin", &cifar_record(&[0], 2).0, false);
        dir
    };
    let dir = make("missing");
    std::fs::remove_file(dir.join("data_batch_4.bin")).unwrap();
    let err = err_of(DataSource::Cifar10 { dir });
    assert!(
        err.contains("data_batch_4.bin") && err.contains("missing"),
        "{err}"
    );

    let dir = make("truncated");
    let mut rec = cifar_record(&[1], 3).0;
    rec.extend_from_slice(&[1, 2, 3]);
    std::fs::write(dir.join("data_batch_2.bin"), rec).unwrap();
    let err = err_of(DataSource::Cifar10 { dir });
    assert!(
        err.contains("data_batch_2.bin") && err.contains("truncated"),
        "{err}"
    );

    let dir = make("empty");
    std::fs::write(dir.join("test_batch.bin"), []).unwrap();
    let err = err_of(DataSource::Cifar10 { dir });
    assert!(
        err.contains("test_batch.bin") && err.contains("empty"),
        "{err}"
    );

    let dir = make("label");
    std::fs::write(dir.join("test_batch.bin"), cifar_record(&[10], 4).0).unwrap();
    let err = err_of(DataSource::Cifar10 { dir });
    assert!(
        err.contains("test_batch.bin") && err.contains("out of range"),
        "{err}"
    );

    let dir = tmp.path().join("c100");
    put(&dir, "train.bin", &cifar_record(&[20, 5], 1).0, false);
    put(&dir, "test.bin", &cifar_record(&[1, 100], 1).0, false);
    let coarse = err_of(DataSource::Cifar100 {
        dir: dir.clone(),
        coarse: true,
    });
    assert!(
        coarse.contains("train.bin") && coarse.contains("label 20"),
        "{coarse}"
    );
    let fine = err_of(DataSource::Cifar100 { dir, coarse: false });
    assert!(
        fine.contains("test.bin") && fine.contains("label 100"),
        "{fine}"
    );
}

// ---------- orders and splits ----------

#[test]
fn epoch_order_is_a_seeded_permutation() {
    let a = epoch_order(1000, 42, 3);
    assert_eq!(a, epoch_order(1000, 42, 3));
    let mut sorted = a.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
    assert_ne!(a, epoch_order(1000, 42, 4));
    assert_ne!(a, epoch_order(1000, 43, 3));
    assert_ne!(a, sorted);
    assert!(epoch_order(0, 1, 1).is_empty());
    assert_eq!(epoch_order(1, 1, 1), vec![0]);
}

/// A dataset whose image `i` holds `i` in its two bytes, so subsets can be traced back.
fn traced(labels: Vec<u32>, classes: usize) -> Dataset {
    Dataset {
        name: "traced".into(),
        shape: [1, 1, 2],
        classes,
        images: (0..labels.len() as u16)
            .flat_map(|i| i.to_be_bytes())
            .collect(),
        labels,
    }
}

fn ids(ds: &Dataset) -> Vec<usize> {
    ds.images
        .chunks_exact(2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
        .collect()
}

#[test]
fn validation_split_is_exact_disjoint_stratified_and_seeded() {
    let labels: Vec<u32> = (0..1003u32).map(|i| (i * 7 + i / 13) % 10).collect();
    let ds = traced(labels.clone(), 10);
    for fraction in [0.1, 0.25, 0.333, 0.5] {
        let (train, val) = ds.split_validation(fraction, 9).unwrap();
        let want = (fraction * 1003.0_f64).round() as usize;
        assert_eq!(val.len(), want);
        assert_eq!(train.len(), 1003 - want);
        let (ti, vi) = (ids(&train), ids(&val));
        let mut all: Vec<usize> = ti.iter().chain(&vi).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1003).collect::<Vec<_>>(), "not a partition");
        assert!(ti.windows(2).all(|w| w[0] < w[1]) && vi.windows(2).all(|w| w[0] < w[1]));
        for (i, &id) in vi.iter().enumerate() {
            assert_eq!(val.labels[i], labels[id]);
        }
        for (c, (&n, &v)) in ds
            .class_counts()
            .iter()
            .zip(&val.class_counts())
            .enumerate()
        {
            let share = fraction * n as f64;
            assert!((v as f64 - share).abs() < 1.0, "class {c}: {v} of {n}");
        }
        let (_, again) = ds.split_validation(fraction, 9).unwrap();
        assert_eq!(ids(&again), vi);
        let (_, other) = ds.split_validation(fraction, 10).unwrap();
        assert_ne!(ids(&other), vi);
    }
}

// ---------- augmentation and batches ----------

fn grid(c: usize, h: usize, w: usize) -> Dataset {
    Dataset {
        name: "grid".into(),
        shape: [c, h, w],
        classes: 3,
        images: (0..2 * c * h * w).map(|i| (i % 251 + 1) as u8).collect(),
        labels: vec![2, 1],
    }
}

#[test]
fn crop_shifts_pixels_and_flip_mirrors_them() {
    let src: Vec<u8> = (1..=16).collect();
    let table: Vec<f32> = (0..256).map(|v| v as f32).collect();
    let mut out = vec![0.0f32; 16];
    // Window at (p + 1, p − 2): output (y, x) reads source (y + 1, x − 2).
    augment::render(
        &src,
        [1, 4, 4],
        &table,
        Draw {
            dy: 1,
            dx: -2,
            flip: false,
        },
        &mut out,
    );
    #[rustfmt::skip]
    let shifted = [
        0.0, 0.0, 5.0, 6.0,
        0.0, 0.0, 9.0, 10.0,
        0.0, 0.0, 13.0, 14.0,
        0.0, 0.0, 0.0, 0.0,
    ];
    assert_eq!(out, shifted);
    augment::render(
        &src,
        [1, 4, 4],
        &table,
        Draw {
            dy: 0,
            dx: 0,
            flip: true,
        },
        &mut out,
    );
    #[rustfmt::skip]
    let mirrored = [
        4.0, 3.0, 2.0, 1.0,
        8.0, 7.0, 6.0, 5.0,
        12.0, 11.0, 10.0, 9.0,
        16.0, 15.0, 14.0, 13.0,
    ];
    assert_eq!(out, mirrored);
    // Crop then flip: flip the shifted window.
    augment::render(
        &src,
        [1, 4, 4],
        &table,
        Draw {
            dy: 1,
            dx: -2,
            flip: true,
        },
        &mut out,
    );
    let flipped_shift: Vec<f32> = shifted
        .chunks(4)
        .flat_map(|r| r.iter().rev().copied())
        .collect();
    assert_eq!(out, flipped_shift);
}

#[test]
fn make_batch_applies_the_drawn_transforms_and_normalisation() {
    let ds = grid(3, 5, 6);
    let norm = Normalization {
        mean: vec![0.1, 0.5, 0.9],
        std: vec![0.5, 0.25, 2.0],
    };
    let aug = Augment {
        crop_padding: 2,
        hflip: true,
    };
    let idx = [1, 0, 1, 1];
    let seed = batch_seed(5, 2, 7);
    let (x, y) = make_batch(&ds, &idx, &norm, Some(&aug), seed);
    assert_eq!(x.shape(), &[4, 3, 5, 6]);
    assert_eq!(y, vec![1, 2, 1, 1]);
    let draws = aug.draws(idx.len(), seed);
    assert!(draws.iter().any(|d| d.flip) && draws.iter().any(|d| d.dx != 0 || d.dy != 0));
    for (b, (&i, d)) in idx.iter().zip(&draws).enumerate() {
        let img = ds.image(i);
        for c in 0..3 {
            for yy in 0..5isize {
                for xx in 0..6isize {
                    let xs = if d.flip { 5 - xx } else { xx };
                    let (sy, sx) = (yy + d.dy, xs + d.dx);
                    let byte = if (0..5).contains(&sy) && (0..6).contains(&sx) {
                        img[c * 30 + sy as usize * 6 + sx as usize]
                    } else {
                        0
                    };
                    let want = (byte as f32 / 255.0 - norm.mean[c]) / norm.std[c];
                    let got = x[[b, c, yy as usize, xx as usize]];
                    assert!(
                        (got - want).abs() < 1e-5,
                        "{b} {c} {yy} {xx}: {got} vs {want}"
                    );
                }
            }
        }
    }
    let (again, _) = make_batch(&ds, &idx, &norm, Some(&aug), seed);
    assert_eq!(again, x);
    let (other, _) = make_batch(&ds, &idx, &norm, Some(&aug), batch_seed(5, 3, 7));
    assert_ne!(other, x);
    let (plain, _) = make_batch(&ds, &idx, &norm, None, seed);
    for (b, &i) in idx.iter().enumerate() {
        for (k, &v) in ds.image(i).iter().enumerate() {
            let c = k / 30;
            let want = (v as f32 / 255.0 - norm.mean[c]) / norm.std[c];
            assert!((plain[[b, c, (k % 30) / 6, k % 6]] - want).abs() < 1e-5);
        }
    }
}

#[test]
fn normalisation_centres_and_scales_each_channel() {
    let embedded = data::load(&DataSource::Embedded).unwrap().train;
    let mut rgb = grid(3, 8, 8);
    rgb.images = (0..500 * 192)
        .map(|i| {
            let c = (i % 192) / 64;
            let v = bytes(1, i as u64 + 1)[0];
            [v / 4, 128 + v / 2, v][c]
        })
        .collect();
    rgb.labels = vec![0; 500];
    for ds in [embedded, rgb] {
        let norm = Normalization::from_dataset(&ds);
        assert!(norm.std.iter().all(|&s| s > 0.01));
        let idx: Vec<usize> = (0..ds.len()).collect();
        let (x, _) = make_batch(&ds, &idx, &norm, None, 0);
        for c in 0..ds.shape[0] {
            let v = x.index_axis(ndarray::Axis(1), c);
            let n = v.len() as f64;
            let mean = v.iter().map(|&a| f64::from(a)).sum::<f64>() / n;
            let var = v
                .iter()
                .map(|&a| (f64::from(a) - mean).powi(2))
                .sum::<f64>()
                / n;
            assert!(mean.abs() < 1e-4, "{} channel {c}: mean {mean}", ds.name);
            assert!(
                (var.sqrt() - 1.0).abs() < 1e-4,
                "{} channel {c}: std {}",
                ds.name,
                var.sqrt()
            );
        }
    }
    let id = Normalization::identity(2);
    assert_eq!((id.mean, id.std), (vec![0.0; 2], vec![1.0; 2]));
}

#[test]
fn cifar_sized_batch_is_fast() {
    let ds = Dataset {
        name: "cifar-like".into(),
        shape: [3, 32, 32],
        classes: 10,
        images: bytes(1024 * 3072, 3),
        labels: vec![0; 1024],
    };
    let norm = Normalization::from_dataset(&ds);
    let aug = Augment {
        crop_padding: 4,
        hflip: true,
    };
    let idx = epoch_order(1024, 1, 0)[..128].to_vec();
    let mut times = Vec::new();
    for b in 0..30 {
        let t = std::time::Instant::now();
        let (x, _) = make_batch(&ds, &idx, &norm, Some(&aug), b);
        times.push(t.elapsed());
        assert!(x.iter().all(|v| v.is_finite()));
    }
    times.sort();
    let median = times[times.len() / 2];
    eprintln!("make_batch 128x3x32x32 with crop+flip: median {median:?}");
    assert!(median.as_millis() < 50, "median {median:?}");
}
