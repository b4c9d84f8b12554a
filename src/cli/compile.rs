//! `sculpt compile`: a checkpoint or ONNX file → every artefact for a target, with a size and budget report.
//! For a target with a `[board]`, the embedded artefacts are linked with its toolchain where it is installed
//! and the budget is decided on the measured flash and RAM (`--estimate-only` skips this).

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::compile::pipeline::{compile_measuring, dump_ir, stages, CompileOptions, Measure};
use crate::compile::target::{Target, TargetRef};
use crate::compile::text;
use crate::verify::on_target::{NotMeasured, OnTarget};

/// Arguments of `sculpt compile`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompileArgs {
    /// Checkpoint (`NAME`, `NAME.json` or `NAME.safetensors`) or `.onnx` file.
    pub input: PathBuf,
    /// Artefact directory.
    #[arg(short, long, default_value = "artefacts")]
    pub out: PathBuf,
    /// Target name (a file in --targets-dir) or path to a target TOML.
    #[arg(short, long)]
    pub target: Option<String>,
    /// Directory of target files.
    #[arg(long, default_value = "targets")]
    pub targets_dir: PathBuf,
    /// Calibration images for int8 (first N of the training split).
    #[arg(long, default_value_t = 256)]
    pub calibration: usize,
    /// Calibration dataset: `embedded`, `idx:DIR`, `cifar10:DIR`, `cifar100:DIR`.
    #[arg(long, default_value = "embedded")]
    pub calibration_data: String,
    /// Skip the int8 artefacts.
    #[arg(long)]
    pub no_int8: bool,
    /// Print the manifest as JSON instead of the report.
    #[arg(long)]
    pub json: bool,
    /// Run the passes up to and including PASS (fold_bn, fuse, layout, quantize, layout_int8), print its IR
    /// as text (or write every stage to --dump-ir) and emit no artefacts.
    #[arg(long, value_name = "PASS")]
    pub stop_after: Option<String>,
    /// Report the estimated flash and RAM only: do not link the embedded artefacts with the target's
    /// toolchain to measure them.
    #[arg(long)]
    pub estimate_only: bool,
    /// Write the text IR of the source and of every pass into DIR (`00-source.ir`, `01-fold_bn.ir`, ...).
    #[arg(long, value_name = "DIR")]
    pub dump_ir: Option<PathBuf>,
}

/// Loads the target `name` refers to ([`TargetRef`]: a `.toml` path, or a name in `dir`, built in or shipped).
pub fn load_target(name: &str, dir: &Path) -> anyhow::Result<Target> {
    let r: TargetRef = name.parse()?;
    let found = r
        .resolve(dir)
        .with_context(|| format!("cannot load target '{name}'"))?;
    Ok(found.target)
}

/// Runs `sculpt compile`.
pub fn run(args: &CompileArgs) -> anyhow::Result<()> {
    let resolved = match &args.target {
        Some(t) => Some(
            t.parse::<TargetRef>()?
                .resolve(&args.targets_dir)
                .with_context(|| format!("cannot load target '{t}'"))?,
        ),
        None => None,
    };
    let measurer: Option<Box<dyn Measure>> = match &resolved {
        Some(r) if r.target.board.is_some() && !args.estimate_only => {
            Some(match OnTarget::new(r.target.clone(), &r.dir) {
                Ok(t) => Box::new(t),
                Err(e) => Box::new(NotMeasured(e.to_string())),
            })
        }
        _ => None,
    };
    let target = resolved.map(|r| r.target);
    let options = CompileOptions {
        calibration_data: crate::cli::verify::parse_dataset(&args.calibration_data)?,
        calibration_samples: args.calibration,
        int8: !args.no_int8,
    };
    if let Some(stop) = &args.stop_after {
        let st = stages(&args.input, target.as_ref(), &options, Some(stop))
            .with_context(|| format!("compiling {}", args.input.display()))?;
        match &args.dump_ir {
            Some(d) => {
                for p in dump_ir(&st, d)? {
                    println!("wrote {}", p.display());
                }
            }
            None => print!("{}", text::print(&st.last().graph)),
        }
        return Ok(());
    }
    let a = compile_measuring(
        &args.input,
        &args.out,
        target.as_ref(),
        &options,
        args.dump_ir.as_deref(),
        measurer.as_deref(),
    )
    .with_context(|| format!("compiling {}", args.input.display()))?;
    if let Some(d) = &args.dump_ir {
        eprintln!("wrote the IR of every stage into {}", d.display());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&a.manifest)?);
    } else {
        print!("{}", a.report);
        println!("wrote {}", a.dir.display());
    }
    Ok(())
}
