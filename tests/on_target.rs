//! `verify --on-target`: the emitted C and the no_std runtime cross-compiled for Cortex-M boards and run under
//! QEMU agree with the host reference (int8 bit-identical); the measured flash matches an image linked here
//! with the toolchain directly and read by `arm-none-eabi-size`; an over-budget model fails with the measured
//! figure, in `verify` and in `sculpt compile`, which decides the budget on it; the int8 harness prepares
//! inputs through model.h alone. Without the toolchains (see scripts/install-test-deps.sh) the tests that
//! need them say so and pass.

mod compile_util;

use std::path::{Path, PathBuf};
use std::process::Command;

use compile_util::*;
use sculpt::compile::emit::c_harness::{self, Io};
use sculpt::compile::pipeline::{
    compile, compile_measuring, read_manifest, Artefact, CompileOptions,
};
use sculpt::compile::target::Target;
use sculpt::data::{load, DataSource, Dataset};
use sculpt::nn::spec::ModelSpec;
use sculpt::verify::on_target::OnTarget;
use sculpt::verify::{verify, FormatResult, VerifyOptions, VerifyReport};

fn targets_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("targets")
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}

fn arm_tools() -> bool {
    let ok = have("arm-none-eabi-gcc") && have("qemu-system-arm");
    if !ok {
        eprintln!("arm-none-eabi-gcc or qemu-system-arm not installed: on-target checks not run");
    }
    ok
}

fn compiled(
    spec: &ModelSpec,
    sparsity: f64,
    target: &str,
    int8: bool,
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let ck = write_checkpoint(dir.path(), "m", spec, sparsity, 21);
    let out = dir.path().join("art");
    let t = Target::load_named(&targets_dir(), target).unwrap();
    let opts = CompileOptions {
        calibration_samples: 64,
        int8,
        ..CompileOptions::default()
    };
    compile(&ck, &out, Some(&t), &opts).unwrap();
    (dir, out)
}

fn row<'a>(r: &'a VerifyReport, format: &str) -> &'a FormatResult {
    r.rows
        .iter()
        .find(|x| x.format == format)
        .unwrap_or_else(|| panic!("no row {format} in\n{}", r.table()))
}

fn on(targets: &[&str], limit: usize) -> VerifyOptions {
    VerifyOptions {
        limit: Some(limit),
        on_target: targets.iter().map(|s| s.to_string()).collect(),
        targets_dir: targets_dir(),
        ..VerifyOptions::default()
    }
}

/// text + data of `elf` as `arm-none-eabi-size` reports them.
fn size_tool(elf: &Path) -> u64 {
    let out = Command::new("arm-none-eabi-size")
        .arg(elf)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(1).expect("a size line");
    let v: Vec<u64> = line
        .split_whitespace()
        .take(2)
        .map(|x| x.parse().unwrap())
        .collect();
    v[0] + v[1]
}

/// Flash of the model in `c_dir` linked for cortex-m4f by hand: a main calling it, with and without the model.
fn flash_by_hand(c_dir: &Path) -> u64 {
    let t = Target::load_named(&targets_dir(), "cortex-m4f").unwrap();
    let b = t.board.clone().unwrap();
    let w = tempfile::tempdir().unwrap();
    let main = "#include \"model.h\"\nstatic float i[SCULPT_MODEL_INPUT_LEN];\nstatic float o[SCULPT_MODEL_OUTPUT_LEN];\n\
                int main(void)\n{\n    return sculpt_model_run(i, o);\n}\n";
    let stub =
        "#include \"model.h\"\nint sculpt_model_run(const float *input, float *output)\n{\n    \
                (void)input;\n    (void)output;\n    return 1;\n}\n";
    std::fs::write(w.path().join("main.c"), main).unwrap();
    std::fs::write(w.path().join("stub.c"), stub).unwrap();
    let link = |model: &Path, out: &str| -> PathBuf {
        let elf = w.path().join(out);
        let st = Command::new(&t.cc)
            .args(&t.cflags)
            .args(&b.ldflags)
            .arg("-I")
            .arg(c_dir)
            .arg("-T")
            .arg(targets_dir().join(b.linker_script.as_ref().unwrap()))
            .arg(targets_dir().join(b.startup.as_ref().unwrap()))
            .arg(w.path().join("main.c"))
            .arg(model)
            .arg("-o")
            .arg(&elf)
            .status()
            .unwrap();
        assert!(st.success());
        elf
    };
    let full = size_tool(&link(&c_dir.join("model.c"), "full.elf"));
    let base = size_tool(&link(&w.path().join("stub.c"), "base.elf"));
    full - base
}

#[test]
fn lenet5_f32_and_int8_agree_on_cortex_m4f_and_the_flash_is_the_linked_one() {
    if !arm_tools() {
        return;
    }
    let (_keep, out) = compiled(&lenet5(), 0.9, "cortex-m4f", true);
    let test = load(&DataSource::Embedded).unwrap().test;
    let r = verify(&out, &test, &on(&["cortex-m4f"], 100)).unwrap();
    println!("{}", r.table());
    assert!(r.passed, "{}", r.table());
    for f in ["c@cortex-m4f", "c-int8@cortex-m4f"] {
        let x = row(&r, f);
        assert!(x.passed && x.note.is_none(), "{f}: {:?}", x.note);
        let fig = x.on_target.as_ref().unwrap();
        assert!(fig.instructions_per_inference.unwrap() > 10_000, "{fig:?}");
        assert!(fig.stack_bytes.unwrap() > 0, "{fig:?}");
        assert!(
            fig.flash_bytes > fig.estimate.unwrap().flash_bytes,
            "{fig:?}"
        );
    }
    assert_eq!(row(&r, "c-int8@cortex-m4f").max_abs_dlogit, Some(0.0));
    assert_eq!(row(&r, "c@cortex-m4f").top1_agreement, Some(1.0));
    for (f, dir) in [
        ("c@cortex-m4f", out.clone()),
        ("c-int8@cortex-m4f", out.join("int8")),
    ] {
        let reported = row(&r, f).on_target.as_ref().unwrap().flash_bytes as f64;
        let linked = flash_by_hand(&dir) as f64;
        assert!(
            (reported - linked).abs() <= 0.02 * linked,
            "{f}: reported {reported} B, linked image {linked} B"
        );
    }
    for f in ["scb@cortex-m4f", "scb-int8@cortex-m4f"] {
        let x = row(&r, f);
        if let sculpt::verify::Outcome::Skipped { tool, why } = &x.outcome {
            eprintln!("{f}: {tool} missing: {why}");
            continue;
        }
        assert!(x.passed, "{f}: {:?}", x.note);
        let fig = x.on_target.as_ref().unwrap();
        assert!(
            fig.flash_bytes > fig.estimate.unwrap().flash_bytes + 4096,
            "{fig:?}"
        );
    }
    assert_eq!(
        row(&r, "scb-int8@cortex-m4f").max_abs_dlogit.unwrap_or(0.0),
        0.0
    );
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains("\"instructions_per_inference\""), "{json}");
    assert!(r.table().contains("instr/inference"));
}

/// CIFAR-shaped random images for a model of `shape`.
fn synthetic(shape: [usize; 3], n: usize) -> Dataset {
    let per: usize = shape.iter().product();
    Dataset {
        name: "synthetic".into(),
        shape,
        classes: 10,
        images: (0..n * per).map(|i| ((i * 7919) % 251) as u8).collect(),
        labels: (0..n as u32).map(|i| i % 10).collect(),
    }
}

#[test]
fn a_90_percent_sparse_resnet20_agrees_on_cortex_m7() {
    if !arm_tools() {
        return;
    }
    // ResNet-20 on 3×16×16 inputs: at 32×32 its f32 activations alone pass the 512 KiB of cortex-m7
    let spec = resnet20();
    let (_keep, out) = compiled(&spec, 0.9, "cortex-m7", false);
    let r = verify(&out, &synthetic(spec.input, 3), &on(&["cortex-m7"], 3)).unwrap();
    println!("{}", r.table());
    assert!(r.passed, "{}", r.table());
    let c = row(&r, "c@cortex-m7");
    assert!(c.passed && c.note.is_none(), "{:?}", c.note);
    assert_eq!(c.top1_agreement, Some(1.0));
    let fig = c.on_target.as_ref().unwrap();
    assert!(
        fig.instructions_per_inference.unwrap() > 1_000_000,
        "{fig:?}"
    );
    let s = row(&r, "scb@cortex-m7");
    assert!(s.passed, "{:?}", s.note);
}

/// A copy of cortex-m4f named `name` whose C is compiled with `extra` added to its flags.
fn m4f_with_flag(dir: &Path, name: &str, extra: &str) {
    let m4 = std::fs::read_to_string(targets_dir().join("cortex-m4f.toml")).unwrap();
    let text = m4
        .replace("name = \"cortex-m4f\"", &format!("name = \"{name}\""))
        .replace(
            "\"-mcpu=cortex-m4\",",
            &format!("\"-mcpu=cortex-m4\", \"{extra}\","),
        );
    assert!(text.contains(extra), "cortex-m4f.toml lost its -mcpu flag");
    std::fs::write(dir.join(format!("{name}.toml")), text).unwrap();
}

#[test]
fn int8_c_is_bit_identical_on_cortex_m4f_with_and_without_the_dsp_path() {
    if !arm_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    m4f_with_flag(dir.path(), "m4f-dsp", "-DSCULPT_ARM_DSP=1");
    m4f_with_flag(dir.path(), "m4f-plain", "-DSCULPT_ARM_DSP=0");
    let (_keep, out) = compiled(&lenet5(), 0.9, "cortex-m4f", true);
    let mut vo = on(&["m4f-dsp", "m4f-plain"], 8);
    vo.targets_dir = dir.path().to_path_buf();
    let r = verify(&out, &load(&DataSource::Embedded).unwrap().test, &vo).unwrap();
    println!("{}", r.table());
    let mut counts = Vec::new();
    for f in ["c-int8@m4f-dsp", "c-int8@m4f-plain"] {
        let x = row(&r, f);
        assert!(x.passed, "{f}: {:?}", x.note);
        assert_eq!(x.max_abs_dlogit, Some(0.0), "{f}");
        counts.push(
            x.on_target
                .as_ref()
                .unwrap()
                .instructions_per_inference
                .unwrap(),
        );
    }
    assert!(
        counts[0] < counts[1],
        "the DSP path runs fewer instructions: {counts:?}"
    );
}

/// A CIFAR-10 directory of `n` random images per batch file.
fn synthetic_cifar10(dir: &Path, n: usize) {
    let rec = 1 + 3 * 32 * 32;
    for (f, file) in [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ]
    .iter()
    .enumerate()
    {
        let bytes: Vec<u8> = (0..n * rec)
            .map(|i| {
                if i % rec == 0 {
                    ((i / rec) % 10) as u8
                } else {
                    ((i * 7919 + f * 104729) % 251) as u8
                }
            })
            .collect();
        std::fs::write(dir.join(file), bytes).unwrap();
    }
}

#[test]
fn a_90_percent_sparse_int8_resnet20_is_bit_identical_on_cortex_m4f() {
    if !arm_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cifar");
    std::fs::create_dir_all(&data).unwrap();
    synthetic_cifar10(&data, 8);
    let mut spec = resnet20();
    spec.input = [3, 32, 32];
    let ck = write_checkpoint(dir.path(), "m", &spec, 0.9, 21);
    let out = dir.path().join("art");
    let opts = CompileOptions {
        calibration_samples: 16,
        calibration_data: DataSource::Cifar10 { dir: data.clone() },
        int8: true,
    };
    compile(&ck, &out, None, &opts).unwrap();
    let test = load(&DataSource::Cifar10 { dir: data }).unwrap().test;
    let r = verify(&out, &test, &on(&["cortex-m4f"], 2)).unwrap();
    println!("{}", r.table());
    let x = row(&r, "c-int8@cortex-m4f");
    assert!(x.passed && x.note.is_none(), "{:?}", x.note);
    assert_eq!(x.max_abs_dlogit, Some(0.0));
    let fig = x.on_target.as_ref().unwrap();
    assert!(
        fig.instructions_per_inference.unwrap() > 1_000_000,
        "{fig:?}"
    );
}

#[test]
fn an_over_budget_model_fails_with_the_measured_figure() {
    if !arm_tools() {
        return;
    }
    let (_keep, out) = compiled(&lenet5(), 0.9, "cortex-m4f", true);
    let m4 = std::fs::read_to_string(targets_dir().join("cortex-m4f.toml")).unwrap();
    let tiny = tempfile::tempdir().unwrap();
    let text = m4
        .replace("name = \"cortex-m4f\"", "name = \"tiny-m4f\"")
        .replace("flash_bytes = 1048576", "flash_bytes = 12000");
    std::fs::write(tiny.path().join("tiny-m4f.toml"), text).unwrap();
    let test = load(&DataSource::Embedded).unwrap().test;
    let mut vo = on(&["tiny-m4f"], 4);
    vo.targets_dir = tiny.path().to_path_buf();
    let r = verify(&out, &test, &vo).unwrap();
    println!("{}", r.table());
    assert!(!r.passed);
    let x = row(&r, "c-int8@tiny-m4f");
    assert!(!x.passed);
    let fig = x.on_target.as_ref().unwrap();
    assert!(fig.flash_bytes > 12000, "{fig:?}");
    let note = x.note.as_deref().unwrap();
    assert!(
        note.contains(&format!("needs {} bytes", fig.flash_bytes)) && note.contains("measured"),
        "{note}"
    );
    assert_eq!(x.max_abs_dlogit, Some(0.0), "agreement is still checked");
}

#[test]
fn the_int8_harness_prepares_inputs_with_the_header_api_only() {
    let (_keep, out) = compiled(&lenet5(), 0.5, "cortex-m4f", true);
    let model_c = std::fs::read_to_string(out.join("int8/model.c")).unwrap();
    let header = std::fs::read_to_string(out.join("int8/model.h")).unwrap();
    assert!(header.contains("int sculpt_model_prepare_input(const float *input, int8_t *q);"));
    assert!(header.contains("#define SCULPT_MODEL_NORMALIZED"));
    let idents = |s: &str| -> std::collections::BTreeSet<String> {
        s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("sc_") || w.starts_with("sculpt_"))
            .map(String::from)
            .collect()
    };
    let public = idents(&header);
    let private: Vec<String> = idents(&model_c).difference(&public).cloned().collect();
    assert!(private.iter().any(|p| p == "sc_quantize"), "{private:?}");
    for io in [Io::Semihosting, Io::Hosted] {
        let h = c_harness::harness(io);
        assert!(h.contains("sculpt_model_prepare_input(") && h.contains("sculpt_model_run_int8("));
        let used = idents(&h);
        let leaked: Vec<&String> = private.iter().filter(|p| used.contains(*p)).collect();
        assert!(
            leaked.is_empty(),
            "{io:?} harness uses model.c internals {leaked:?}"
        );
        for u in used.iter().filter(|u| u.starts_with("sculpt_")) {
            assert!(
                public.contains(u),
                "{io:?} harness uses {u}, which model.h does not declare"
            );
        }
    }
}

#[test]
fn every_target_compiles_the_emitted_c_warning_free() {
    let (_keep, out) = compiled(&lenet5(), 0.9, "cortex-m4f", true);
    let all = Target::load_all(&targets_dir()).unwrap();
    for name in ["cortex-m0plus", "aarch64-linux"] {
        assert!(
            all.iter().any(|t| t.name == name && t.board.is_some()),
            "{name}"
        );
    }
    for t in all {
        if !have(&t.cc) {
            eprintln!("{}: {} not installed, not compiled", t.name, t.cc);
            continue;
        }
        for d in [out.clone(), out.join("int8")] {
            let st = Command::new(&t.cc)
                .args(&t.cflags)
                .arg("-c")
                .arg(d.join("model.c"))
                .arg("-o")
                .arg(d.join(format!("{}.o", t.name)))
                .output()
                .unwrap();
            assert!(
                st.status.success(),
                "{} on {}: {}",
                t.name,
                d.display(),
                String::from_utf8_lossy(&st.stderr)
            );
        }
    }
}

#[test]
fn the_other_targets_run_from_their_files_alone() {
    let (_keep, out) = compiled(&lenet5(), 0.9, "cortex-m0plus", true);
    let test = load(&DataSource::Embedded).unwrap().test;
    let mut names = Vec::new();
    if arm_tools() {
        names.push("cortex-m0plus");
    }
    if have("aarch64-linux-gnu-gcc") && have("qemu-aarch64") {
        names.push("aarch64-linux");
    }
    if names.is_empty() {
        return;
    }
    let r = verify(&out, &test, &on(&names, 20)).unwrap();
    println!("{}", r.table());
    for n in names {
        let x = row(&r, &format!("c-int8@{n}"));
        assert!(x.passed, "{n}: {:?}", x.note);
        assert_eq!(x.max_abs_dlogit, Some(0.0));
        let fig = x.on_target.as_ref().unwrap();
        assert!(fig.flash_bytes > 0);
        let f = row(&r, &format!("c@{n}"));
        assert_eq!(f.top1_agreement, Some(1.0), "{n}: {:?}", f.note);
        if n == "aarch64-linux" {
            assert_eq!(fig.instructions_per_inference, None);
        } else {
            assert!(fig.instructions_per_inference.is_some());
        }
    }
}

/// The example of formats/c-api.md compiles warning-free against f32 and int8 models and prints, for every
/// sample, the class the interpreter predicts.
#[test]
fn the_c_api_example_compiles_and_predicts_like_the_interpreter() {
    if !have("cc") {
        eprintln!("no host C compiler: example not compiled");
        return;
    }
    let spec =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("formats/c-api.md"))
            .unwrap();
    let example = spec
        .split("```c example\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("formats/c-api.md has a ```c example block");
    let dir = tempfile::tempdir().unwrap();
    let ck = write_checkpoint(dir.path(), "m", &lenet5(), 0.8, 5);
    let out = dir.path().join("art");
    compile(
        &ck,
        &out,
        None,
        &CompileOptions {
            calibration_samples: 64,
            ..CompileOptions::default()
        },
    )
    .unwrap();
    let a = sculpt::compile::pipeline::read_manifest(&out).unwrap();
    let test = load(&DataSource::Embedded).unwrap().test;
    let xs = sculpt::compile::pipeline::images_f32(&test, 30);
    let src = sculpt::compile::pipeline::source_path(&out, &a).unwrap();
    let source = sculpt::compile::import::import(&src).unwrap();
    let calib = sculpt::compile::pipeline::calibration_images(&source, &a.options).unwrap();
    let graphs = sculpt::compile::pipeline::build(source, &a.index_formats, Some(&calib)).unwrap();
    let bin: Vec<u8> = xs.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.path().join("in.bin"), bin).unwrap();
    for (sub, graph) in [("", &graphs.float), ("int8", graphs.int8.as_ref().unwrap())] {
        let d = out.join(sub);
        std::fs::write(d.join("example.c"), example).unwrap();
        let exe = d.join("example");
        let st = Command::new("cc")
            .args([
                "-std=c99",
                "-O2",
                "-ffp-contract=off",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-pedantic",
                "-o",
            ])
            .arg(&exe)
            .arg(d.join("example.c"))
            .arg(d.join("model.c"))
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        let run = Command::new(&exe)
            .arg(dir.path().join("in.bin"))
            .output()
            .unwrap();
        assert!(run.status.success());
        let got: Vec<usize> = String::from_utf8_lossy(&run.stdout)
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        let logits = sculpt::compile::interp::run_batch(graph, &xs).unwrap();
        let want: Vec<usize> = logits
            .chunks(10)
            .map(|l| (0..10).fold(0, |b, i| if l[i] > l[b] { i } else { b }))
            .collect();
        assert_eq!(got, want, "{sub}");
    }
}

/// `sculpt compile CHECKPOINT --out OUT --target TARGET` with `extra` flags; returns success and stderr.
fn sculpt_compile(ck: &Path, out: &Path, target: &Path, extra: &[&str]) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_sculpt"))
        .arg("compile")
        .arg(ck)
        .arg("--out")
        .arg(out)
        .arg("--target")
        .arg(target)
        .args(["--calibration", "64"])
        .args(extra)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `targets/cortex-m4f.toml` renamed to `name`, with `edit` applied, written into `dir`.
fn m4f_variant(dir: &Path, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let m4 = std::fs::read_to_string(targets_dir().join("cortex-m4f.toml")).unwrap();
    let text = edit(m4.replace("name = \"cortex-m4f\"", &format!("name = \"{name}\"")));
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn compile_decides_the_budget_on_the_measured_flash() {
    if !arm_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ck = write_checkpoint(dir.path(), "m", &lenet5(), 0.9, 21);
    let m4 = OnTarget::load("cortex-m4f", &targets_dir()).unwrap();
    let out = dir.path().join("m4f");
    let opts = CompileOptions {
        calibration_samples: 64,
        ..CompileOptions::default()
    };
    let a = compile_measuring(&ck, &out, Some(&m4.target), &opts, None, Some(&m4)).unwrap();
    let file = |k: Artefact| a.manifest.files.iter().find(|f| f.format == k).unwrap();
    for k in [Artefact::CF32, Artefact::CInt8] {
        let f = file(k);
        let measured = f
            .measured
            .unwrap_or_else(|| panic!("{k:?}: {:?}", f.unmeasured));
        let d = out.join(&f.file).parent().unwrap().to_path_buf();
        let linked = flash_by_hand(&d) as f64;
        let reported = measured.flash_bytes as f64;
        assert!(
            (reported - linked).abs() <= 0.02 * linked,
            "{k:?}: reported {reported} B, linked image {linked} B"
        );
        assert!(measured.ram_bytes > 0, "{f:?}");
    }
    assert!(
        a.report.contains("measured in the image linked"),
        "{}",
        a.report
    );
    let on_disk = read_manifest(&out).unwrap();
    assert_eq!(
        on_disk.files, a.manifest.files,
        "the manifest records the measured figures"
    );

    // A budget the int8 estimate fits and the linked int8 image does not.
    let c8 = file(Artefact::CInt8);
    let (estimate, measured) = (
        c8.footprint.unwrap().flash_bytes,
        c8.measured.unwrap().flash_bytes,
    );
    assert!(measured > estimate + 1000, "{c8:?}");
    let budget = (estimate + measured) / 2;
    let tiny = m4f_variant(dir.path(), "tiny-m4f", |t| {
        t.replace("flash_bytes = 1048576", &format!("flash_bytes = {budget}"))
            .replace("value_types = [\"f32\", \"i8\"]", "value_types = [\"i8\"]")
    });
    let (ok, _, err) = sculpt_compile(&ck, &dir.path().join("tiny"), &tiny, &[]);
    assert!(
        !ok,
        "over budget on the measured figure, yet compile passed"
    );
    assert!(
        err.contains(&format!("needs {measured} bytes, tiny-m4f has {budget}"))
            && err.contains("measured in the linked image"),
        "{err}"
    );
    let (ok, report, err) =
        sculpt_compile(&ck, &dir.path().join("est"), &tiny, &["--estimate-only"]);
    assert!(ok, "the estimate fits: {err}");
    assert!(
        report.contains("estimate: the .scb file and its arena"),
        "{report}"
    );
}

#[test]
fn without_the_toolchain_compile_reports_what_the_estimate_leaves_out() {
    let dir = tempfile::tempdir().unwrap();
    let ck = write_checkpoint(dir.path(), "m", &lenet5(), 0.9, 21);
    let t = m4f_variant(dir.path(), "m4f-no-cc", |t| {
        t.replace(
            "cc = \"arm-none-eabi-gcc\"",
            "cc = \"sculpt-test-no-such-cc\"",
        )
    });
    let (ok, report, err) = sculpt_compile(&ck, &dir.path().join("art"), &t, &[]);
    assert!(ok, "{err}");
    assert!(
        report.contains(
            "not measured: the target's C compiler 'sculpt-test-no-such-cc' is not installed"
        ) && report.contains("without the code (C kernels or the runtime)")
            && report.contains("[fits]"),
        "{report}"
    );
    let m = read_manifest(&dir.path().join("art")).unwrap();
    for f in m.files.iter().filter(|f| f.footprint.is_some()) {
        assert!(f.measured.is_none() && f.unmeasured.is_some(), "{f:?}");
    }
}

#[test]
fn an_unknown_target_name_or_a_missing_target_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = OnTarget::load("cortex-m99", &targets_dir())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown target 'cortex-m99'") && e.contains("cortex-m0plus"),
        "{e}"
    );
    let missing = dir.path().join("gone.toml");
    let e = OnTarget::load(missing.to_str().unwrap(), &targets_dir())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("gone.toml") && e.contains("does not exist"),
        "{e}"
    );
    let ck = write_checkpoint(dir.path(), "m", &lenet5(), 0.5, 3);
    let (ok, _, err) = sculpt_compile(&ck, &dir.path().join("a"), Path::new("cortex-m99"), &[]);
    assert!(!ok && err.contains("unknown target 'cortex-m99'"), "{err}");
}
