//! Evaluation shared among ranks: every rank evaluates its block of test batches and the counts are summed,
//! giving the loss and accuracy of one process bit for bit, on every rank, for any rank count.

use sculpt::data::{self, DataSource, Normalization};
use sculpt::distributed::{Collective, ThreadGroup};
use sculpt::engine::Device;
use sculpt::nn::ModelSpec;
use sculpt::train::{evaluate, evaluate_split};

#[test]
fn split_evaluation_equals_one_process_for_every_rank_count() {
    let splits = data::load(&DataSource::Embedded).unwrap();
    let idx: Vec<usize> = (0..203.min(splits.test.len())).collect();
    let test = splits.test.subset(&idx);
    let norm = Normalization::from_dataset(&splits.train);
    let spec = ModelSpec::from_name("lenet5", test.shape, test.classes).unwrap();
    let batch = 32;
    let mut net = Device::Cpu.network(&spec, 7).unwrap();
    let one = evaluate(net.as_mut(), &test, &norm, batch).unwrap();
    assert!(one.0.is_finite() && one.0 > 0.0 && (0.0..=1.0).contains(&one.1));

    // 7 batches: 2 and 3 ranks split them unevenly, 9 ranks leave some ranks without a batch.
    for size in [2, 3, 9] {
        let results: Vec<(f64, f64)> = std::thread::scope(|s| {
            let handles: Vec<_> = ThreadGroup::new(size)
                .into_iter()
                .map(|g| {
                    let (spec, test, norm) = (&spec, &test, &norm);
                    s.spawn(move || {
                        let comm: &dyn Collective = &g;
                        let mut net = Device::Cpu.network(spec, 7).unwrap();
                        evaluate_split(net.as_mut(), test, norm, batch, comm).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (rank, r) in results.iter().enumerate() {
            assert_eq!(
                (r.0.to_bits(), r.1.to_bits()),
                (one.0.to_bits(), one.1.to_bits()),
                "{size} ranks, rank {rank}: {r:?} against one process {one:?}"
            );
        }
    }
}
