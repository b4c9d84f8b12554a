//! Checkpoint files: round trip, the layout of formats/checkpoint.md checked by an independent reader of the
//! safetensors container, and clear errors for damaged files.

use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use sculpt::data::Normalization;
use sculpt::method::Phase;
use sculpt::nn::ModelSpec;
use sculpt::optim::Schedule;
use sculpt::sparsity::Mask;
use sculpt::train::checkpoint::{
    checkpoint_paths, load_checkpoint, Checkpoint, CheckpointMeta, RngState,
};
use sculpt::train::{Recipe, TrainState};

fn sample() -> Checkpoint {
    let spec = ModelSpec::from_name("lenet5", [1, 28, 28], 10).unwrap();
    let infos = spec.graph().unwrap().tensors();
    let tensors: Vec<(String, ArrayD<f32>)> = infos
        .iter()
        .enumerate()
        .map(|(k, t)| {
            let n: usize = t.shape.iter().product();
            let v: Vec<f32> = (0..n)
                .map(|i| ((i * 7 + k * 13) % 101) as f32 * 0.01 - 0.5)
                .collect();
            (
                t.path.clone(),
                ArrayD::from_shape_vec(IxDyn(&t.shape), v).unwrap(),
            )
        })
        .collect();
    let w = &infos[0];
    let keep: Vec<bool> = (0..w.shape.iter().product::<usize>())
        .map(|i| i % 3 != 0)
        .collect();
    let mask = Mask::from_keep(&w.shape, &keep);
    let momentum = vec![(infos[1].path.clone(), tensors[1].1.mapv(|x| x * 0.5))];
    let method_tensors = vec![(
        "theta0.fc1.weight".to_string(),
        ArrayD::from_elem(IxDyn(&[2, 3]), 1.25f32),
    )];
    let probe = sculpt::train::probe::Probe {
        inputs: ArrayD::from_shape_fn(IxDyn(&[2, 1, 28, 28]), |d| {
            (d[2] * 28 + d[3]) as f32 / 784.0
        }),
        logits: ArrayD::from_shape_fn(IxDyn(&[2, 10]), |d| d[1] as f32 - 4.5 * d[0] as f32),
    };
    use rand::{RngCore, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    rng.next_u64();
    let training = TrainState {
        phase_index: 1,
        phase: Some(Phase {
            label: "cycle 2".into(),
            epochs: 3,
            schedule: Schedule::constant(0.1),
            reset_optimizer: true,
        }),
        epoch_in_phase: 2,
        global_epoch: 5,
        global_step: 600,
        steps_per_epoch: 120,
        finished: false,
        method_state: serde_json::json!({ "level": 2, "fraction": 0.1f64 + 0.2f64 }),
        rng: RngState::capture(&rng),
        best_val: Some((0.987, 4)),
        last_val_acc: Some(0.98),
        last_test_acc: Some(0.97),
    };
    Checkpoint {
        meta: CheckpointMeta {
            format: "sculpt-checkpoint".into(),
            version: 1,
            model: spec,
            normalization: Normalization {
                mean: vec![0.1307],
                std: vec![0.3081],
            },
            recipe: Some(Recipe::default()),
            method: Some("dense".into()),
            training: Some(training),
            kernel_path: Some("avx2".into()),
            sparse_kernels: Some("auto".into()),
            tensors_sha256: None,
        },
        tensors,
        momentum,
        masks: vec![(w.path.clone(), mask)],
        method_tensors,
        probe: Some(probe),
    }
}

/// Reads a safetensors header without the safetensors crate: u64 LE length, then a JSON object of
/// `name -> { dtype, shape, data_offsets }`.
fn raw_header(bytes: &[u8]) -> (serde_json::Map<String, serde_json::Value>, usize) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let v: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    (v.as_object().unwrap().clone(), 8 + n)
}

fn raw_tensor<'a>(bytes: &'a [u8], name: &str) -> (String, Vec<usize>, &'a [u8]) {
    let (h, base) = raw_header(bytes);
    let e = &h[name];
    let off: Vec<usize> = e["data_offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    let shape = e["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    (
        e["dtype"].as_str().unwrap().to_string(),
        shape,
        &bytes[base + off[0]..base + off[1]],
    )
}

#[test]
fn round_trip_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let c = sample();
    let st = c.save(&dir.path().join("ck")).unwrap();
    assert_eq!(st, dir.path().join("ck.safetensors"));
    for name in ["ck", "ck.json", "ck.safetensors"] {
        let back = load_checkpoint(&dir.path().join(name)).unwrap();
        assert_eq!(back.meta, c.meta);
        assert_eq!(back.tensors, c.tensors);
        assert_eq!(back.momentum, c.momentum);
        assert_eq!(back.masks, c.masks);
        assert_eq!(back.method_tensors, c.method_tensors);
        assert_eq!(back.probe, c.probe);
    }
    let back = load_checkpoint(&st).unwrap();
    let ts = back.meta.training.unwrap();
    // f64 state survives JSON exactly, and the random stream continues where it was.
    assert_eq!(
        ts.method_state["fraction"].as_f64().unwrap(),
        0.1f64 + 0.2f64
    );
    use rand::RngCore;
    let mut a = c
        .meta
        .training
        .as_ref()
        .unwrap()
        .rng
        .restore(Path::new("x"))
        .unwrap();
    let mut b = ts.rng.restore(Path::new("x")).unwrap();
    use rand::SeedableRng;
    let mut reference = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    reference.next_u64();
    let expect = reference.next_u64();
    assert_eq!(a.next_u64(), expect);
    assert_eq!(b.next_u64(), expect);
}

#[test]
fn layout_follows_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let c = sample();
    c.save(&dir.path().join("ck")).unwrap();
    let bytes = std::fs::read(dir.path().join("ck.safetensors")).unwrap();
    let (h, _) = raw_header(&bytes);
    // Weights under their paths, little-endian f32.
    let (dtype, shape, data) = raw_tensor(&bytes, "conv1.weight");
    assert_eq!(dtype, "F32");
    assert_eq!(shape, vec![6, 1, 5, 5]);
    let first = f32::from_le_bytes(data[..4].try_into().unwrap());
    assert_eq!(first, c.tensors[0].1.as_slice().unwrap()[0]);
    // Momentum and method tensors under their prefixes.
    assert_eq!(raw_tensor(&bytes, "optim.momentum.conv1.bias").0, "F32");
    assert_eq!(raw_tensor(&bytes, "method.theta0.fc1.weight").1, vec![2, 3]);
    // The mask as I64 CSR arrays: row pointers and fan-in column indices.
    let (dtype, shape, data) = raw_tensor(&bytes, "mask.conv1.weight.indptr");
    assert_eq!((dtype.as_str(), shape), ("I64", vec![7]));
    let indptr: Vec<i64> = data
        .chunks(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let (_, _, data) = raw_tensor(&bytes, "mask.conv1.weight.indices");
    let indices: Vec<i64> = data
        .chunks(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let mut keep = vec![false; 150];
    for r in 0..6 {
        for &col in &indices[indptr[r] as usize..indptr[r + 1] as usize] {
            keep[r * 25 + col as usize] = true;
        }
    }
    let expect: Vec<bool> = (0..150).map(|i| i % 3 != 0).collect();
    assert_eq!(keep, expect);
    assert!(
        !h.contains_key("mask.conv2.weight.indptr"),
        "a dense weight has no mask entries"
    );
    // The JSON metadata carries the keys every reader needs.
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("ck.json")).unwrap()).unwrap();
    assert_eq!(meta["format"], "sculpt-checkpoint");
    assert_eq!(meta["version"], 1);
    assert_eq!(meta["model"]["arch"], "lenet5");
    assert_eq!(meta["model"]["input"], serde_json::json!([1, 28, 28]));
    assert_eq!(
        meta["normalization"]["mean"][0].as_f64().unwrap() as f32,
        0.1307f32
    );
    assert_eq!(meta["training"]["phase"]["schedule"]["shape"], "constant");
    // The JSON copy names the safetensors file it was written with.
    use sha2::{Digest, Sha256};
    let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(
        meta["tensors_sha256"],
        hex(&Sha256::digest(&bytes)).as_str()
    );
    // The header carries the same metadata, behind a digest computed here as formats/checkpoint.md states.
    let entry = h["__metadata__"]["sculpt.checkpoint"].as_str().unwrap();
    let (digest, embedded) = entry.split_once('\n').unwrap();
    let mut copy = meta.clone();
    copy.as_object_mut().unwrap().remove("tensors_sha256");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(embedded).unwrap(),
        copy
    );
    let mut names: Vec<&String> = h.keys().filter(|k| *k != "__metadata__").collect();
    names.sort();
    let mut sha = Sha256::new();
    let mut field = |b: &[u8]| {
        sha.update((b.len() as u64).to_le_bytes());
        sha.update(b);
    };
    field(embedded.as_bytes());
    for name in names {
        let (dtype, shape, data) = raw_tensor(&bytes, name);
        field(name.as_bytes());
        field(dtype.as_bytes());
        field(
            &shape
                .iter()
                .flat_map(|&d| (d as u64).to_le_bytes())
                .collect::<Vec<u8>>(),
        );
        field(data);
    }
    assert_eq!(digest, hex(&sha.finalize()));
    // And the safetensors crate (what PyTorch tooling uses) reads it too.
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("fc3.bias").unwrap().shape(), &[10]);
}

/// The checkpoint file `bytes` without the embedded metadata, as sculpt wrote it before the metadata moved
/// into the header: the JSON file is then the metadata.
fn without_embedded_metadata(bytes: &[u8]) -> Vec<u8> {
    let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let views: Vec<(String, safetensors::tensor::TensorView)> = st.tensors();
    safetensors::serialize(views, &None).unwrap()
}

#[test]
fn damaged_checkpoints_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("ck");
    let c = sample();
    c.save(&base).unwrap();
    let (st, json) = checkpoint_paths(&base);
    let good_st = std::fs::read(&st).unwrap();
    let good_json = std::fs::read(&json).unwrap();

    let e = load_checkpoint(&dir.path().join("nothing"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("nothing.safetensors"), "{e}");

    std::fs::write(&st, &good_st[..good_st.len() / 2]).unwrap();
    let e = load_checkpoint(&base).unwrap_err().to_string();
    assert!(
        e.contains("ck.safetensors") && e.contains("safetensors"),
        "{e}"
    );

    std::fs::write(&st, b"garbage").unwrap();
    let e = load_checkpoint(&base).unwrap_err().to_string();
    assert!(e.contains("ck.safetensors"), "{e}");

    // Any change to the tensors or the embedded metadata breaks the digest.
    let mut flipped = good_st.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    std::fs::write(&st, &flipped).unwrap();
    let e = load_checkpoint(&base).unwrap_err().to_string();
    assert!(e.contains("ck.safetensors") && e.contains("digest"), "{e}");

    // The safetensors file alone is the checkpoint: a damaged or missing JSON copy does not matter.
    std::fs::write(&st, &good_st).unwrap();
    std::fs::write(&json, b"{ not json").unwrap();
    assert_eq!(load_checkpoint(&base).unwrap().meta, c.meta);
    std::fs::remove_file(&json).unwrap();
    assert_eq!(load_checkpoint(&base).unwrap().tensors, c.tensors);

    // The layout without embedded metadata reads its JSON file, with the checks that go with it.
    let good_st = without_embedded_metadata(&good_st);
    let mut meta: serde_json::Value = serde_json::from_slice(&good_json).unwrap();
    meta["tensors_sha256"] = {
        use sha2::{Digest, Sha256};
        let d = Sha256::digest(&good_st);
        d.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .into()
    };
    let good_json = serde_json::to_vec(&meta).unwrap();
    std::fs::write(&st, &good_st).unwrap();
    std::fs::write(&json, &good_json).unwrap();
    let legacy = load_checkpoint(&base).unwrap().meta;
    assert!(legacy.tensors_sha256.is_some());
    assert_eq!(
        CheckpointMeta {
            tensors_sha256: None,
            ..legacy
        },
        c.meta
    );
    std::fs::write(&json, b"{ not json").unwrap();
    let e = load_checkpoint(&base).unwrap_err().to_string();
    assert!(e.contains("ck.json") && e.contains("metadata"), "{e}");

    let mut meta: serde_json::Value = serde_json::from_slice(&good_json).unwrap();
    meta["version"] = 99.into();
    std::fs::write(&json, serde_json::to_vec(&meta).unwrap()).unwrap();
    let e = load_checkpoint(&base).unwrap_err().to_string();
    assert!(e.contains("version"), "{e}");

    // Metadata of another model: tensors no longer match the graph.
    let mut meta: serde_json::Value = serde_json::from_slice(&good_json).unwrap();
    meta["model"]["variant"] = "caffe".into();
    std::fs::write(&json, serde_json::to_vec(&meta).unwrap()).unwrap();
    let e = load_checkpoint(&base).unwrap_err().to_string();
    assert!(e.contains("conv1.weight"), "{e}");

    // A torn pair: tensors of another save next to this metadata.
    std::fs::write(&json, &good_json).unwrap();
    let mut other = sample();
    other.tensors[0].1[[0, 0, 0, 0]] += 1.0;
    other.save(&dir.path().join("other")).unwrap();
    let other_st = std::fs::read(dir.path().join("other.safetensors")).unwrap();
    std::fs::write(&st, without_embedded_metadata(&other_st)).unwrap();
    let e = load_checkpoint(&base).unwrap_err().to_string();
    assert!(e.contains("ck.safetensors") && e.contains("SHA-256"), "{e}");

    // Without the checksum, a mask whose column index is out of range.
    let mut meta: serde_json::Value = serde_json::from_slice(&good_json).unwrap();
    meta.as_object_mut().unwrap().remove("tensors_sha256");
    std::fs::write(&json, serde_json::to_vec(&meta).unwrap()).unwrap();
    let mut bytes = good_st.clone();
    let (h, header_end) = raw_header(&bytes);
    let off = h["mask.conv1.weight.indices"]["data_offsets"][0]
        .as_u64()
        .unwrap() as usize;
    bytes[header_end + off..header_end + off + 8].copy_from_slice(&10_000i64.to_le_bytes());
    std::fs::write(&st, &bytes).unwrap();
    let e = load_checkpoint(&base).unwrap_err().to_string();
    assert!(e.contains("mask of conv1.weight"), "{e}");

    // A negative index.
    bytes[header_end + off..header_end + off + 8].copy_from_slice(&(-1i64).to_le_bytes());
    std::fs::write(&st, &bytes).unwrap();
    let e = load_checkpoint(&base).unwrap_err().to_string();
    assert!(e.contains("negative"), "{e}");
}

#[test]
fn the_documented_metadata_example_parses() {
    let spec = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("formats/checkpoint.md"),
    )
    .unwrap();
    let a = spec.find("```json").expect("spec has a JSON example") + "```json".len();
    let b = a + spec[a..].find("```").unwrap();
    let meta: CheckpointMeta = serde_json::from_str(&spec[a..b]).unwrap();
    assert_eq!(
        meta.model,
        ModelSpec::from_name("lenet5", [1, 28, 28], 10).unwrap()
    );
    assert_eq!(meta.normalization.std, vec![0.3081]);
    assert!(meta.training.is_none() && meta.recipe.is_none());
}
