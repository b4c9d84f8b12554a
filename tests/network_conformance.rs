//! The `Network` conformance suite (`network_suite`) run for every engine in this build: the CPU engine, the
//! reference MLP the method tests use, and, with the `tch` feature, the libtorch engine on the CPU.

#[path = "method_common.rs"]
mod method_common;
#[path = "network_suite/mod.rs"]
mod network_suite;

use network_suite::Engine;

/// One test per contract for `$engine`.
macro_rules! conformance {
    ($module:ident, $engine:expr) => {
        mod $module {
            use super::network_suite as suite;

            #[test]
            fn tensors_follow_the_spec() {
                suite::tensors_follow_the_spec(&$engine)
            }
            #[test]
            fn write_read_round_trip_and_errors() {
                suite::write_read_round_trip_and_errors(&$engine)
            }
            #[test]
            fn masked_weights_stay_zero_with_dense_gradients() {
                suite::masked_weights_stay_zero_with_dense_gradients(&$engine)
            }
            #[test]
            fn same_inputs_give_identical_bits() {
                suite::same_inputs_give_identical_bits(&$engine)
            }
            #[test]
            fn optimizer_state_round_trip_and_decay_roles() {
                suite::optimizer_state_round_trip_and_decay_roles(&$engine)
            }
            #[test]
            fn bn_statistics_follow_pytorch() {
                suite::bn_statistics_follow_pytorch(&$engine)
            }
            #[test]
            fn predict_is_independent_of_batch_splits() {
                suite::predict_is_independent_of_batch_splits(&$engine)
            }
            #[test]
            fn bad_inputs_are_errors() {
                suite::bad_inputs_are_errors(&$engine)
            }
            #[test]
            fn agrees_with_the_cpu_engine() {
                suite::agrees_with_the_cpu_engine(&$engine)
            }
        }
    };
}

const CPU: Engine = Engine {
    name: "cpu",
    make: network_suite::cpu_engine,
    supports: |_| true,
};

const REF_MLP: Engine = Engine {
    name: "reference MLP",
    make: |spec, seed| {
        let sculpt::nn::Arch::Mlp { hidden } = &spec.arch else {
            panic!("the reference MLP implements MLPs only");
        };
        Ok(Box::new(method_common::RefMlp::new(
            spec.input,
            hidden.clone(),
            spec.classes,
            seed,
        )))
    },
    supports: network_suite::is_mlp,
};

conformance!(cpu, super::CPU);
conformance!(reference_mlp, super::REF_MLP);

#[cfg(feature = "tch")]
mod libtorch {
    use sculpt::engine::{Device, TchDevice};
    use sculpt::nn::ModelSpec;

    use super::network_suite::{self, Engine};

    pub const TCH_CPU: Engine = Engine {
        name: "tch-cpu",
        make: |spec, seed| Device::Tch(TchDevice::Cpu).network(spec, seed),
        supports: |_| true,
    };

    /// Same seed, same initial weights: both engines draw from the same generator.
    #[test]
    fn initial_weights_equal_the_cpu_engine_bit_for_bit() {
        for spec in network_suite::all_specs() {
            let cpu = network_suite::cpu_engine(&spec, 9).unwrap();
            let tch = Device::Tch(TchDevice::Cpu).network(&spec, 9).unwrap();
            for t in cpu.tensors() {
                assert_eq!(
                    tch.read(&t.path).unwrap(),
                    cpu.read(&t.path).unwrap(),
                    "{}",
                    t.path
                );
            }
        }
    }

    /// A ResNet-20 at CIFAR size: every gradient and the weights after one step agree with the CPU engine.
    #[test]
    fn resnet20_at_cifar_size_agrees_with_the_cpu_engine() {
        let spec = ModelSpec::from_name("resnet20", [3, 32, 32], 10).unwrap();
        let mut cpu = network_suite::cpu_engine(&spec, 2).unwrap();
        let mut tch = Device::Tch(TchDevice::Cpu).network(&spec, 2).unwrap();
        let (x, y) = network_suite::batch(&spec, 8, 5);
        let obj = |l: ndarray::ArrayView2<f32>| sculpt::nn::loss::cross_entropy(l, &y, 0.0);
        let (lc, _) = cpu.forward_backward(x.view(), true, &obj).unwrap();
        let (lt, _) = tch.forward_backward(x.view(), true, &obj).unwrap();
        assert!(
            (lc - lt).abs() <= network_suite::FORWARD_TOL as f64 * lc.abs(),
            "{lc} vs {lt}"
        );
        let cfg = sculpt::optim::SgdConfig::default();
        cpu.sgd_step(&cfg, 0.1);
        tch.sgd_step(&cfg, 0.1);
        for t in cpu.tensors() {
            if t.is_param() {
                let g = network_suite::rel_diff(
                    &tch.grad(&t.path).unwrap(),
                    &cpu.grad(&t.path).unwrap(),
                );
                assert!(
                    g <= network_suite::GRAD_TOL,
                    "gradient of {}: {g:e}",
                    t.path
                );
            }
            let w =
                network_suite::rel_diff(&tch.read(&t.path).unwrap(), &cpu.read(&t.path).unwrap());
            assert!(w <= network_suite::STEP_TOL, "{} after SGD: {w:e}", t.path);
        }
    }

    /// A GPU that is not there is an error naming the device, not a panic.
    #[test]
    fn a_missing_gpu_is_a_clear_error() {
        let spec = ModelSpec::from_name("mlp", [1, 4, 4], 3).unwrap();
        let e = match Device::Tch(TchDevice::Cuda(99)).network(&spec, 0) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a network on cuda:99"),
        };
        assert!(e.starts_with("cuda:99: "), "{e}");
        assert!(e.contains("CUDA"), "{e}");
    }
}

#[cfg(feature = "tch")]
conformance!(tch_cpu, super::libtorch::TCH_CPU);
