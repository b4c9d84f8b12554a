//! The command-line interface: clap derive, one file per subcommand. Each subcommand turns its arguments into
//! typed library configurations and calls the library; nothing else happens here.

pub mod analyze;
pub mod bench;
pub mod compile;
pub mod inspect;
pub mod pipeline;
pub mod run;
pub mod sweep;
pub mod train;
pub mod verify;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// sculpt: train sparse neural networks and compile them for deployment.
#[derive(Debug, Parser)]
#[command(name = "sculpt", version, about, propagate_version = true)]
pub struct Cli {
    /// Worker threads for training and inference (default: all cores).
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,

    /// Memory limit per input file (model, checkpoint, dataset) that readers enforce before allocating, e.g.
    /// `4G` or `512M` (default 2G).
    #[arg(long, global = true, value_name = "SIZE", value_parser = crate::budget::parse_size)]
    pub max_memory: Option<u64>,

    /// Which masked convolution and linear layers of the CPU engine run on the sparse kernels: `auto` (where
    /// the per-layer cost model predicts a gain), `always` or `never` (dense kernels on masked weights).
    #[arg(long, global = true, value_name = "POLICY", default_value = "auto")]
    pub sparse_kernels: crate::engine::cpu::cost::SparsePolicy,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model from a recipe (or the embedded default), or resume a stopped run.
    Train(Box<train::TrainArgs>),
    /// Measure training or inference throughput of a model on random inputs.
    Bench(bench::BenchArgs),
    /// Compile a checkpoint or ONNX file into ONNX, sparse ONNX, .scb and C for a target.
    Compile(compile::CompileArgs),
    /// Run every artefact of a compilation on a dataset and compare with the reference.
    Verify(verify::VerifyArgs),
    /// Show layers, shapes, sparsity, storage and bytes of any artefact.
    Inspect(inspect::InspectArgs),
    /// Run inference with an artefact.
    Run(run::RunArgs),
    /// Train, compile and verify in one go (the main job).
    Pipeline(pipeline::PipelineArgs),
    /// Run methods x sparsities x seeds from one file and tabulate and plot the results.
    Sweep(sweep::SweepArgs),
    /// Analyse checkpoints: linear mode connectivity, sign flips, per-layer sparsity.
    Analyze(analyze::AnalyzeArgs),
}

/// Builds the global rayon pool with `threads` workers (all cores when `None`).
pub fn init_threads(threads: Option<usize>) -> anyhow::Result<()> {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = threads {
        anyhow::ensure!(n > 0, "--threads must be at least 1");
        builder = builder.num_threads(n);
    }
    builder
        .build_global()
        .context("cannot build the thread pool")
}

/// Runs the parsed command line.
pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    init_threads(cli.threads.or_else(crate::distributed::default_threads))?;
    crate::engine::cpu::cost::SparsePolicy::set_process_default(cli.sparse_kernels);
    if let Some(limit) = cli.max_memory {
        crate::budget::set_default_limit(limit);
    }
    match &cli.command {
        Command::Train(a) => train::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Compile(a) => compile::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Run(a) => run::run(a),
        Command::Pipeline(a) => pipeline::run(a),
        Command::Sweep(a) => sweep::run(a),
        Command::Analyze(a) => analyze::run(a),
    }
}

/// Entry point of the `sculpt` binary: parses the arguments and runs the command. Started by an MPI launcher
/// (`mpirun -np N sculpt train ...`), it joins the MPI world first (see [`crate::distributed::launch`]); an
/// error on any rank then ends the whole job.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _world = crate::distributed::launch(matches!(cli.command, Command::Train(_)))
        .map_err(anyhow::Error::msg)?;
    let result = dispatch(cli);
    let world = crate::distributed::world();
    if let (Err(e), true) = (&result, world.size() > 1) {
        eprintln!("error on rank {} of {}: {e:#}", world.rank(), world.size());
        world.abort(1);
    }
    result
}
