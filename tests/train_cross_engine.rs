//! Checkpoints are interchangeable between engines: a sparse run stopped on libtorch (on the CPU) resumes on the
//! CPU engine, and the reverse, with exactly the stored weights, masks and momentum, and its next epoch ends with
//! the weights the original engine reaches from the same checkpoint, to a relative 1e-3 (the engines' f32
//! rounding differs, and one epoch of SGD amplifies it).
#![cfg(feature = "tch")]

use std::path::Path;

use ndarray::ArrayD;
use sculpt::engine::{Device, Network, TchDevice};
use sculpt::train::{load_checkpoint, Override, Recipe, Run};

const TCH_CPU: Device = Device::Tch(TchDevice::Cpu);
/// Largest difference after one epoch on different engines, relative to the tensor's largest magnitude.
const EPOCH_TOL: f32 = 1e-3;

fn sparse_recipe() -> Recipe {
    Recipe::load(
        None,
        &[
            Override::parse("model.name=lenet5").unwrap(),
            Override::parse("train.epochs=2").unwrap(),
            Override::parse("train.batch_size=64").unwrap(),
            Override::parse("train.seed=5").unwrap(),
            Override::parse("data.train_limit=256").unwrap(),
            Override::parse("data.test_limit=100").unwrap(),
            Override::parse("method={ kind = \"static\", sparsity = 0.5 }").unwrap(),
            Override::parse("schedule.lr=0.05").unwrap(),
        ],
    )
    .unwrap()
}

fn rel_diff(got: &ArrayD<f32>, want: &ArrayD<f32>) -> f32 {
    assert_eq!(got.shape(), want.shape());
    let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    got.iter()
        .zip(want)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

fn copy_run(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// The network's weights, masks and momentum equal the checkpoint's exactly.
fn assert_holds_checkpoint(net: &dyn Network, dir: &Path) {
    let ck = load_checkpoint(&dir.join("checkpoint")).unwrap();
    assert!(!ck.masks.is_empty() && !ck.momentum.is_empty());
    for (path, value) in &ck.tensors {
        assert_eq!(&net.read(path).unwrap(), value, "{path}");
    }
    for (path, mask) in &ck.masks {
        assert_eq!(net.mask(path).as_ref(), Some(mask), "mask of {path}");
    }
    let momentum = net.optimizer_state();
    assert_eq!(momentum.len(), ck.momentum.len());
    for ((p, m), (q, n)) in momentum.iter().zip(&ck.momentum) {
        assert_eq!((p, m), (q, n), "momentum");
    }
}

fn final_weights(dir: &Path) -> Vec<(String, ArrayD<f32>)> {
    load_checkpoint(&dir.join("final.safetensors"))
        .unwrap()
        .tensors
}

/// Trains one epoch on `first`, then finishes the run on `first` and, from a copy, on `second`.
fn stop_on_and_resume(first: Device, second: Device) {
    let root = tempfile::tempdir().unwrap();
    let here = root.path().join("here");
    let mut run = Run::start(&sparse_recipe(), first, &here)
        .unwrap()
        .quiet(true);
    assert!(run.run_epoch().unwrap().is_some());
    run.finish().unwrap();
    let there = root.path().join("there");
    copy_run(&here, &there);

    let moved = Run::resume(&there, second).unwrap().quiet(true);
    assert_eq!(moved.device(), second);
    assert_eq!(moved.state().global_epoch, 1);
    assert_holds_checkpoint(moved.network(), &there);
    let moved = moved.run_to_end().unwrap();
    let stayed = Run::resume(&here, first)
        .unwrap()
        .quiet(true)
        .run_to_end()
        .unwrap();
    assert!(moved.completed && stayed.completed);
    assert_eq!((moved.epochs_run, stayed.epochs_run), (1, 1));
    assert_eq!(moved.density, stayed.density);

    let ck = load_checkpoint(&there.join("final.safetensors")).unwrap();
    assert_eq!(ck.meta.recipe.unwrap().train.device, second);
    for ((p, a), (q, b)) in final_weights(&there).iter().zip(&final_weights(&here)) {
        assert_eq!(p, q);
        let d = rel_diff(a, b);
        assert!(
            d <= EPOCH_TOL,
            "{p}: {second} vs {first} after one epoch: {d:e}"
        );
        if let Some((_, mask)) = ck.masks.iter().find(|(m, _)| m == p) {
            let zero = a.iter().zip(mask.keep_flags()).all(|(v, k)| k || *v == 0.0);
            assert!(zero, "{p}: masked weights moved on {second}");
        }
    }
}

#[test]
fn a_run_stopped_on_libtorch_continues_on_the_cpu_engine() {
    stop_on_and_resume(TCH_CPU, Device::Cpu);
}

#[test]
fn a_run_stopped_on_the_cpu_engine_continues_on_libtorch() {
    stop_on_and_resume(Device::Cpu, TCH_CPU);
}
