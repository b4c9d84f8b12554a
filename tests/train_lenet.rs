//! LeNet-5 trained on the embedded MNIST subset reaches at least 97% test accuracy in a few epochs, and the run
//! leaves consistent metrics and checkpoints behind.

use sculpt::data::{self, DataSource};
use sculpt::engine::Device;
use sculpt::train::{evaluate, load_checkpoint, read_metrics, Override, Recipe, Run};

#[test]
fn lenet5_reaches_97_percent_on_the_embedded_set() {
    let recipe = Recipe::load(
        None,
        &[
            Override::parse("model.name=lenet5").unwrap(),
            Override::parse("train.epochs=5").unwrap(),
            Override::parse("train.batch_size=64").unwrap(),
            Override::parse("data.validation=0.05").unwrap(),
            Override::parse("optimizer.momentum=0.9").unwrap(),
            Override::parse("schedule={ lr = 0.05, shape = \"cosine\", warmup = 0.2 }").unwrap(),
        ],
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let t0 = std::time::Instant::now();
    let s = Run::start(&recipe, Device::Cpu, out.path())
        .unwrap()
        .quiet(true)
        .run_to_end()
        .unwrap();
    let seconds = t0.elapsed().as_secs_f64();
    let acc = s.final_test_acc.unwrap();
    eprintln!(
        "lenet5: test {:.2}% best val {:.2}% in {seconds:.1}s",
        100.0 * acc,
        100.0 * s.best_val_acc.unwrap()
    );
    assert!(acc >= 0.97, "test accuracy {acc}");
    assert!(s.completed && s.total_epochs == 5 && s.density == 1.0);
    assert!(s.best_val_acc.unwrap() >= 0.95);

    // One metrics line per epoch, loss falling, the lr following the cosine schedule.
    let m = read_metrics(&out.path().join("metrics.jsonl")).unwrap();
    assert_eq!(m.len(), 5);
    let spe = (8004 - 400) / 64;
    for (i, e) in m.iter().enumerate() {
        assert_eq!(
            (e.epoch, e.global_epoch, e.step),
            (i + 1, i + 1, (i + 1) * spe)
        );
        assert!(e.test_acc.is_some() && e.val_acc.is_some() && e.images_per_s > 0.0);
    }
    assert!(m[4].train_loss < m[0].train_loss);
    let last_lr = recipe.schedule.lr(5 * spe - 1, 5 * spe);
    assert!((m[4].lr - last_lr).abs() < 1e-12);
    assert_eq!(m[4].test_acc, s.last_test_acc);

    // The final checkpoint alone reproduces the reported accuracy.
    let ck = load_checkpoint(&s.final_checkpoint).unwrap();
    let mut net = Device::Cpu.network(&ck.meta.model, 123).unwrap();
    ck.apply_to(net.as_mut(), &s.final_checkpoint).unwrap();
    let splits = data::load(&DataSource::Embedded).unwrap();
    let (_, acc2) = evaluate(net.as_mut(), &splits.test, &ck.meta.normalization, 500).unwrap();
    assert_eq!(acc2, acc);
}
