//! `sculpt verify --on-target`: the C artefacts and the no_std runtime with each `.scb` artefact, built with a
//! target's own toolchain and run on its emulated board (`[board]` in `targets/*.toml`), against the same
//! references and bounds as on the host (int8 bit-identical). Each row also carries what the artefact takes in
//! the linked image and, on boards with an instruction clock, the instructions per inference.
//!
//! - **Flash and RAM** are measured, not estimated: the size probe (a `main` calling `sculpt_model_run`) is
//!   linked once with the artefact and once with a stub, and the difference of the two images (read from the
//!   ELF section headers, [`elf`]) is the artefact's: its code, constants and the compiler and C library
//!   helpers it pulls in; RAM is its static data (the arena). The deepest stack the model used is measured
//!   on semihosting boards by painting the stack and is added to RAM for the budget check, which uses these
//!   measured figures and fails a row whose artefact does not fit.
//! - **Instructions per inference** (semihosting boards with `systick_hz` and `-icount shift=0`): QEMU then
//!   advances its virtual clock by one nanosecond per instruction executed, so the board's SysTick ticks,
//!   read before and after each inference, give instructions = ticks × 10⁹ / `systick_hz` (to within one
//!   tick: 40 instructions at 25 MHz). The figure is the median over the samples, from the float input to
//!   the float logits. It counts instructions, not cycles: QEMU models neither pipelines nor caches, wait
//!   states or multi-cycle instructions (a Cortex-M4 multiply-accumulate and a load both count one).
//!
//! A missing tool (the cross compiler, the emulator, the Rust target) skips the row with the reason.

pub mod elf;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{compare, FormatResult, Outcome};
use crate::compile::artefact::{Artefact, Executor};
use crate::compile::emit::c_harness::{self, Io};
use crate::compile::pipeline::{ArtefactFile, Measure};
use crate::compile::target::{shipped_dir, Board, Footprint, Target, TargetRef};
use crate::error::{Error, Result};
use elf::ImageSize;

/// Why an on-target check gave no result.
#[derive(Debug)]
pub enum Failure {
    /// `tool` is not installed; the row is skipped, `why` says what to install.
    Unavailable { tool: String, why: String },
    /// The check ran and failed.
    Failed(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Failed(e)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Unavailable { why, .. } => write!(f, "skipped: {why}"),
            Failure::Failed(e) => write!(f, "{e}"),
        }
    }
}

type Checked<T> = std::result::Result<T, Failure>;

/// What one artefact takes and costs on one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub target: String,
    /// Flash the artefact takes in the linked image: code, constants and the library helpers it pulls in.
    pub flash_bytes: u64,
    /// Static RAM it takes in the linked image (its arena and other statics), without the stack.
    pub ram_bytes: u64,
    /// The deepest stack an inference used, where the board measures it.
    pub stack_bytes: Option<u64>,
    /// sculpt's estimate without the toolchain (the `.scb` file and its arena: no code, helpers or stack).
    pub estimate: Option<Footprint>,
    /// Median instructions per inference on the emulated board, where it counts them.
    pub instructions_per_inference: Option<u64>,
}

/// What a harness run on the board returned.
#[derive(Debug, Clone, PartialEq)]
pub struct BoardRun {
    pub logits: Vec<f32>,
    /// Instructions of each inference (empty where the board does not count them).
    pub instructions: Vec<u64>,
    pub stack_bytes: Option<u64>,
}

/// A target with a board and the directory its board files are named relative to.
#[derive(Debug, Clone)]
pub struct OnTarget {
    pub target: Target,
    pub board: Board,
    pub dir: PathBuf,
}

/// Longest a single emulator run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(900);

impl OnTarget {
    /// `target` on its board; its board files are looked up in `targets_dir`, then in the `targets/`
    /// directory of the sculpt sources. Errors when the target has no `[board]` or a file is missing.
    pub fn new(target: Target, targets_dir: &Path) -> Result<OnTarget> {
        let board = target.board.clone().ok_or_else(|| {
            Error::Invalid(format!(
                "target {} has no [board] to run on (formats/targets.md)",
                target.name
            ))
        })?;
        let wanted: Vec<&String> = board
            .linker_script
            .iter()
            .chain(board.startup.iter())
            .collect();
        let dir = [targets_dir.to_path_buf(), shipped_dir()]
            .into_iter()
            .find(|d| wanted.iter().all(|f| d.join(f).is_file()))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "the board files of target {} ({}) are not in {}",
                    target.name,
                    wanted
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    targets_dir.display()
                ))
            })?;
        let dir = std::fs::canonicalize(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(OnTarget { target, board, dir })
    }

    /// The target `name` refers to ([`TargetRef`]: a `.toml` path, or a name in `targets_dir`, built in or
    /// shipped) on its board.
    pub fn load(name: &str, targets_dir: &Path) -> Result<OnTarget> {
        let r: TargetRef = name.parse()?;
        let found = r.resolve(targets_dir)?;
        OnTarget::new(found.target, &found.dir)
    }

    /// Runs the C model in `c_dir` (`model.c`, `model.h`) on the board on the samples `xs` and measures
    /// what it takes in flash and RAM.
    pub fn check_c(&self, c_dir: &Path, xs: &[f32]) -> Checked<(BoardRun, ImageSize)> {
        let work = workdir()?;
        let w = work.path();
        let model = self.build_c(w, c_dir)?;
        let size = self.image_delta(w, std::slice::from_ref(&model), &[])?;
        let run = self.run_harness(w, &[model], &[], xs)?;
        Ok((run, size))
    }

    /// What the C model in `c_dir` takes in flash and RAM in the linked image, without running it.
    pub fn measure_c(&self, c_dir: &Path) -> Checked<ImageSize> {
        let work = workdir()?;
        let w = work.path();
        let model = self.build_c(w, c_dir)?;
        self.image_delta(w, &[model], &[])
    }

    /// Runs the `.scb` model `scb` with the no_std runtime built for the board's Rust target, behind the
    /// float C API, on the samples `xs`, and measures what runtime and model take together.
    pub fn check_runtime(&self, scb: &[u8], xs: &[f32]) -> Checked<(BoardRun, ImageSize)> {
        let work = workdir()?;
        let w = work.path();
        let (glue, lib) = self.build_runtime(w, scb)?;
        let size = self.image_delta(w, std::slice::from_ref(&glue), std::slice::from_ref(&lib))?;
        let run = self.run_harness(w, &[glue], &[lib], xs)?;
        Ok((run, size))
    }

    /// What the no_std runtime and the `.scb` model `scb` take together in the linked image, without
    /// running them.
    pub fn measure_runtime(&self, scb: &[u8]) -> Checked<ImageSize> {
        let work = workdir()?;
        let w = work.path();
        let (glue, lib) = self.build_runtime(w, scb)?;
        self.image_delta(w, &[glue], &[lib])
    }

    /// Copies `model.c` and `model.h` from `c_dir` into `w` and compiles the model.
    fn build_c(&self, w: &Path, c_dir: &Path) -> Checked<PathBuf> {
        for f in ["model.c", "model.h"] {
            copy(&c_dir.join(f), &w.join(f))?;
        }
        self.compile(w, "model.c")
    }

    /// Writes the C API over the runtime for `scb` into `w`; returns its object and the runtime library.
    fn build_runtime(&self, w: &Path, scb: &[u8]) -> Checked<(PathBuf, PathBuf)> {
        let m = sculpt_runtime::Model::parse(scb)
            .map_err(|e| Error::Invalid(format!("not a valid .scb model: {e}")))?;
        write(
            &w.join("model.h"),
            &c_harness::runtime_header(m.input_len(), m.output_len()),
        )?;
        write(
            &w.join("model.c"),
            &c_harness::runtime_glue(scb, m.arena_size()),
        )?;
        let glue = self.compile(w, "model.c")?;
        Ok((glue, self.runtime_lib()?))
    }

    fn cc(&self, w: &Path, args: &[&std::ffi::OsStr], what: &str) -> Checked<()> {
        let out = Command::new(&self.target.cc)
            .args(&self.target.cflags)
            .arg("-I")
            .arg(w)
            .args(args)
            .current_dir(w)
            .output()
            .map_err(|e| missing(&self.target.cc, e, "the target's C compiler"))?;
        if !out.status.success() {
            return Err(Failure::Failed(Error::Invalid(format!(
                "{what} with {} for {}: {}",
                self.target.cc,
                self.target.name,
                String::from_utf8_lossy(&out.stderr).trim()
            ))));
        }
        Ok(())
    }

    fn compile(&self, w: &Path, src: &str) -> Checked<PathBuf> {
        let obj = w.join(format!("{}.o", src.trim_end_matches(".c")));
        self.cc(
            w,
            &[
                "-c".as_ref(),
                w.join(src).as_os_str(),
                "-o".as_ref(),
                obj.as_os_str(),
            ],
            &format!("{src} does not compile"),
        )?;
        Ok(obj)
    }

    fn link(&self, w: &Path, objs: &[PathBuf], libs: &[PathBuf], out: &str) -> Checked<PathBuf> {
        let mut objs = objs.to_vec();
        if let Some(s) = &self.board.startup {
            copy(&self.dir.join(s), &w.join("startup.c"))?;
            objs.insert(0, self.compile(w, "startup.c")?);
        }
        let elf = w.join(out);
        let mut args: Vec<std::ffi::OsString> = self.board.ldflags.iter().map(Into::into).collect();
        if let Some(ld) = &self.board.linker_script {
            args.push("-T".into());
            args.push(self.dir.join(ld).into());
        }
        args.extend(objs.iter().chain(libs).map(|p| p.as_os_str().to_owned()));
        args.push("-o".into());
        args.push(elf.clone().into());
        let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        self.cc(w, &refs, &format!("{out} does not link"))?;
        Ok(elf)
    }

    /// What `objs` + `libs` add to an image over the stub: the size probe linked with each.
    fn image_delta(&self, w: &Path, objs: &[PathBuf], libs: &[PathBuf]) -> Checked<ImageSize> {
        write(&w.join("probe.c"), c_harness::SIZE_PROBE)?;
        write(&w.join("stub.c"), c_harness::SIZE_STUB)?;
        let probe = self.compile(w, "probe.c")?;
        let stub = self.compile(w, "stub.c")?;
        let mut with = vec![probe.clone()];
        with.extend_from_slice(objs);
        let full = elf::image_size(&self.link(w, &with, libs, "probe.elf")?)?;
        let base = elf::image_size(&self.link(w, &[probe, stub], &[], "baseline.elf")?)?;
        Ok(ImageSize {
            flash_bytes: full.flash_bytes.saturating_sub(base.flash_bytes),
            ram_bytes: full.ram_bytes.saturating_sub(base.ram_bytes),
        })
    }

    fn run_harness(
        &self,
        w: &Path,
        objs: &[PathBuf],
        libs: &[PathBuf],
        xs: &[f32],
    ) -> Checked<BoardRun> {
        write(&w.join("harness.c"), &c_harness::harness(self.board.io))?;
        let mut all = vec![self.compile(w, "harness.c")?];
        all.extend_from_slice(objs);
        let elf = self.link(w, &all, libs, "harness.elf")?;
        let bin: Vec<u8> = xs.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(w.join("in.bin"), bin).map_err(|e| Error::io(w.join("in.bin"), e))?;
        let mut cmd = Command::new(&self.board.runner[0]);
        cmd.args(&self.board.runner[1..]).arg(&elf).current_dir(w);
        if self.board.io == Io::Hosted {
            cmd.arg(w.join("in.bin")).arg(w.join("out.bin"));
        }
        run_with_timeout(cmd, &self.board.runner[0], &self.target.name)?;
        let logits: Vec<f32> = read(&w.join("out.bin"))?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let mut run = BoardRun {
            logits,
            instructions: Vec::new(),
            stack_bytes: None,
        };
        if self.board.io == Io::Semihosting {
            let per_tick = self.instructions_per_tick();
            if let Some(k) = per_tick {
                run.instructions = read(&w.join("ticks.bin"))?
                    .chunks_exact(8)
                    .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) * k)
                    .collect();
            }
            let s = read(&w.join("stack.bin"))?;
            if s.len() == 4 {
                run.stack_bytes = Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as u64);
            }
        }
        Ok(run)
    }

    /// Instructions per SysTick tick: 10⁹ / `systick_hz` when the runner counts instructions
    /// (`-icount shift=0`) and that is a whole number.
    fn instructions_per_tick(&self) -> Option<u64> {
        let hz = self.board.systick_hz?;
        let icount = self
            .board
            .runner
            .windows(2)
            .any(|p| p[0] == "-icount" && p[1].split(',').any(|o| o == "shift=0" || o == "0"));
        (icount && 1_000_000_000 % hz == 0).then(|| 1_000_000_000 / hz)
    }

    /// Builds (once per Rust target and optimisation level, cached) the staticlib of [`c_harness::RUNTIME_LIB_RS`].
    fn runtime_lib(&self) -> Checked<PathBuf> {
        let Some(triple) = self.board.rust_target.clone() else {
            return Err(Failure::Unavailable {
                tool: "rust_target".into(),
                why: format!(
                    "target {} names no rust_target for the no_std runtime",
                    self.target.name
                ),
            });
        };
        let runtime = Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime");
        if !runtime.join("Cargo.toml").is_file() {
            return Err(Failure::Unavailable {
                tool: "sculpt-runtime sources".into(),
                why: format!(
                    "the sculpt-runtime sources are not at {}",
                    runtime.display()
                ),
            });
        }
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let sysroot = Command::new(&rustc)
            .args(["--print", "sysroot"])
            .output()
            .map_err(|e| missing(&rustc, e, "rustc"))?;
        let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
        if !sysroot
            .join("lib/rustlib")
            .join(&triple)
            .join("lib")
            .is_dir()
        {
            return Err(Failure::Unavailable {
                tool: format!("rust target {triple}"),
                why: format!(
                    "the Rust target {triple} is not installed (rustup target add {triple})"
                ),
            });
        }
        let base = std::env::var_os("SCULPT_ON_TARGET_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("sculpt-on-target"));
        let opt = self.board.runtime_opt_level.unwrap_or_default();
        let dir = base.join(format!("{triple}-opt-{}", opt.name()));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        for (file, text) in [
            (
                "Cargo.toml",
                c_harness::runtime_cargo_toml(&runtime, opt.cargo_value()),
            ),
            ("lib.rs", c_harness::RUNTIME_LIB_RS.to_string()),
        ] {
            let p = dir.join(file);
            if std::fs::read_to_string(&p).ok().as_deref() != Some(text.as_str()) {
                crate::fsio::write_atomic(&p, text.as_bytes())?;
            }
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(&cargo)
            .args(["build", "--release", "--offline", "--quiet", "--target"])
            .arg(&triple)
            .arg("--manifest-path")
            .arg(dir.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", dir.join("target"))
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET")
            .env_remove("CARGO_PROFILE_RELEASE_OPT_LEVEL")
            .env_remove("CARGO_PROFILE_RELEASE_LTO")
            .env_remove("CARGO_PROFILE_RELEASE_CODEGEN_UNITS")
            .env_remove("CARGO_PROFILE_RELEASE_PANIC")
            .current_dir(&dir)
            .output()
            .map_err(|e| missing(&cargo, e, "cargo"))?;
        if !out.status.success() {
            return Err(Failure::Failed(Error::Invalid(format!(
                "cannot build sculpt-runtime for {triple}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))));
        }
        Ok(dir
            .join("target")
            .join(&triple)
            .join("release")
            .join("libsculpt_on_target.a"))
    }
}

impl Measure for OnTarget {
    /// Measures the C artefacts and, with the no_std runtime, the `.scb` ones; a skipped or failed
    /// measurement leaves the reason in [`ArtefactFile::unmeasured`].
    fn measure(&self, dir: &Path, files: &mut [ArtefactFile]) {
        for f in files {
            let path = dir.join(&f.file);
            let size = match f.format {
                Artefact::CF32 | Artefact::CInt8 => {
                    self.measure_c(path.parent().unwrap_or(Path::new(".")))
                }
                Artefact::ScbF32 | Artefact::ScbInt8 => std::fs::read(&path)
                    .map_err(|e| Failure::Failed(Error::io(&path, e)))
                    .and_then(|b| self.measure_runtime(&b)),
                Artefact::OnnxDense | Artefact::OnnxSparse => continue,
            };
            match size {
                Ok(s) => {
                    f.measured = Some(Footprint {
                        flash_bytes: s.flash_bytes,
                        ram_bytes: s.ram_bytes,
                    })
                }
                Err(Failure::Unavailable { why, .. }) => f.unmeasured = Some(why),
                Err(Failure::Failed(e)) => {
                    f.unmeasured =
                        Some(format!("the {} image did not build: {e}", self.target.name))
                }
            }
        }
    }
}

/// A [`Measure`] for a target whose images cannot be built (its board files are missing): every binary
/// artefact is left unmeasured with this reason.
pub struct NotMeasured(pub String);

impl Measure for NotMeasured {
    fn measure(&self, _dir: &Path, files: &mut [ArtefactFile]) {
        for f in files.iter_mut().filter(|f| f.footprint.is_some()) {
            f.unmeasured = Some(self.0.clone());
        }
    }
}

fn workdir() -> Checked<tempfile::TempDir> {
    Ok(tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?)
}

fn copy(from: &Path, to: &Path) -> Checked<()> {
    std::fs::copy(from, to).map_err(|e| Error::io(from, e))?;
    Ok(())
}

fn write(path: &Path, text: &str) -> Checked<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))?;
    Ok(())
}

fn read(path: &Path) -> Checked<Vec<u8>> {
    Ok(std::fs::read(path).map_err(|e| Error::io(path, e))?)
}

fn missing(tool: &str, e: std::io::Error, what: &str) -> Failure {
    if e.kind() == std::io::ErrorKind::NotFound {
        Failure::Unavailable {
            tool: tool.to_string(),
            why: format!(
                "{what} '{tool}' is not installed (scripts/install-test-deps.sh installs the toolchains)"
            ),
        }
    } else {
        Failure::Failed(Error::Invalid(format!("cannot run {what} '{tool}': {e}")))
    }
}

fn run_with_timeout(mut cmd: Command, tool: &str, target: &str) -> Checked<()> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| missing(tool, e, "the board emulator"))?;
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() > RUN_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Failure::Failed(Error::Invalid(format!(
                    "the harness on {target} did not finish within {} s",
                    RUN_TIMEOUT.as_secs()
                ))));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(Failure::Failed(Error::Invalid(format!("{tool}: {e}")))),
        }
    };
    let out = child
        .wait_with_output()
        .map_err(|e| Failure::Failed(Error::Invalid(format!("{tool}: {e}"))))?;
    if !status.success() {
        return Err(Failure::Failed(Error::Invalid(format!(
            "the harness failed on {target} ({status}): {}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))));
    }
    Ok(())
}

/// The median of `v` (the lower middle for an even count); `None` when empty.
pub fn median(v: &[u64]) -> Option<u64> {
    let mut s = v.to_vec();
    s.sort_unstable();
    s.get(s.len().saturating_sub(1) / 2).copied()
}

/// What [`rows`] compares with.
pub(super) struct References<'a> {
    pub dir: &'a Path,
    pub files: &'a [ArtefactFile],
    pub xs: &'a [f32],
    pub labels: &'a [u32],
    pub classes: usize,
    pub float: &'a [f32],
    pub int8: Option<&'a [f32]>,
    /// Largest |Δlogit| allowed for float formats.
    pub float_bound: f32,
    pub require_all: bool,
}

/// One row per C and `.scb` artefact per target: agreement under the host's bounds, and the measured
/// footprint within the target's budget.
pub(super) fn rows(r: &References, targets: &[OnTarget]) -> Vec<FormatResult> {
    let mut rows = Vec::new();
    for t in targets {
        for f in r.files {
            let int8 = f.format.int8();
            let is_c = matches!(f.format, Artefact::CF32 | Artefact::CInt8);
            if !(is_c || matches!(f.format, Artefact::ScbF32 | Artefact::ScbInt8)) {
                continue;
            }
            let want = match (int8, r.int8) {
                (true, Some(q)) => q,
                (true, None) => continue,
                (false, _) => r.float,
            };
            let path = r.dir.join(&f.file);
            let outcome = if is_c {
                let d = path.parent().map(Path::to_path_buf).unwrap_or_default();
                t.check_c(&d, r.xs)
            } else {
                std::fs::read(&path)
                    .map_err(|e| Failure::Failed(Error::io(&path, e)))
                    .and_then(|b| t.check_runtime(&b, r.xs))
            };
            let mut row = FormatResult::new(
                format!("{}@{}", f.format.name(), t.target.name),
                f.file.clone(),
                format!(
                    "{} on {}",
                    if is_c { Executor::C } else { Executor::Runtime }.label(),
                    t.target.name
                ),
                f.bytes,
                if int8 {
                    "bit-identical to the int8 interpreter; measured flash and RAM within budget"
                        .into()
                } else {
                    format!(
                        "same top-1, |Δ| ≤ {:e}; measured flash and RAM within budget",
                        r.float_bound
                    )
                },
            );
            row.artefact = Some(f.format);
            let result = match outcome {
                Ok((run, size)) => {
                    let fig = Figures {
                        target: t.target.name.clone(),
                        flash_bytes: size.flash_bytes,
                        ram_bytes: size.ram_bytes,
                        stack_bytes: run.stack_bytes,
                        estimate: f.footprint,
                        instructions_per_inference: median(&run.instructions),
                    };
                    row.bytes = size.flash_bytes;
                    let result = match compare(want, &run.logits, r.classes, r.labels) {
                        Ok(c) => {
                            let agrees = if int8 {
                                c.max_abs == 0.0
                            } else {
                                c.agreement == 1.0 && c.max_abs <= r.float_bound
                            };
                            let need = Footprint {
                                flash_bytes: fig.flash_bytes,
                                ram_bytes: fig.ram_bytes + fig.stack_bytes.unwrap_or(0),
                            };
                            let what = format!("{} (measured in the linked image)", f.file);
                            row.accuracy = Some(c.accuracy);
                            row.top1_agreement = Some(c.agreement);
                            row.max_abs_dlogit = Some(c.max_abs);
                            match t.target.check(&what, &need) {
                                Err(e) => Outcome::Failed {
                                    max_abs_dlogit: Some(c.max_abs),
                                    top1_agreement: Some(c.agreement),
                                    why: e.to_string(),
                                },
                                Ok(()) => Outcome::measured(
                                    agrees,
                                    c.max_abs,
                                    c.agreement,
                                    format!("outside the bound ({})", row.bound),
                                ),
                            }
                        }
                        Err(e) => Outcome::of_error(&e),
                    };
                    row.on_target = Some(fig);
                    result
                }
                Err(Failure::Unavailable { tool, why }) => Outcome::Skipped { tool, why },
                Err(Failure::Failed(e)) => Outcome::of_error(&e),
            };
            row.settle(result, r.require_all);
            rows.push(row);
        }
    }
    rows
}

/// The on-target figures of `rows` as a table for people (empty when no row has any).
pub fn table(rows: &[FormatResult]) -> String {
    let with: Vec<(&FormatResult, &Figures)> = rows
        .iter()
        .filter_map(|r| r.on_target.as_ref().map(|f| (r, f)))
        .collect();
    if with.is_empty() {
        return String::new();
    }
    let mut s = format!(
        "on target (flash and RAM measured in the linked image; instructions per inference under QEMU -icount):\n\
         {:<24} {:>11} {:>14} {:>9} {:>9} {:>14} {:>16}\n",
        "format", "flash", "flash estimate", "RAM", "stack", "RAM estimate", "instr/inference"
    );
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    for (r, f) in with {
        s.push_str(&format!(
            "{:<24} {:>11} {:>14} {:>9} {:>9} {:>14} {:>16}\n",
            r.format,
            f.flash_bytes,
            opt(f.estimate.map(|e| e.flash_bytes)),
            f.ram_bytes,
            opt(f.stack_bytes),
            opt(f.estimate.map(|e| e.ram_bytes)),
            opt(f.instructions_per_inference),
        ));
    }
    s.push_str(
        "estimates are the .scb file and its arena: they leave out the code (C kernels or the runtime), \
         compiler helpers and the stack\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_the_lower_middle() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[5, 1, 9]), Some(5));
        assert_eq!(median(&[4, 1, 9, 7]), Some(4));
    }

    #[test]
    fn a_broken_elf_is_an_error_not_a_panic() {
        assert!(elf::parse(b"").is_err());
        assert!(elf::parse(b"\x7fELF\x01\x01\x01\0\0\0\0\0\0\0\0\0").is_err());
        let mut b = vec![0u8; 52];
        b[..6].copy_from_slice(b"\x7fELF\x01\x01");
        b[0x20..0x24].copy_from_slice(&1000u32.to_le_bytes());
        b[0x2E..0x30].copy_from_slice(&40u16.to_le_bytes());
        b[0x30..0x32].copy_from_slice(&2u16.to_le_bytes());
        assert!(elf::parse(&b).unwrap_err().contains("truncated"));
    }
}
