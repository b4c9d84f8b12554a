//! Deployment targets (`targets/*.toml`, documented in `formats/targets.md`): flash and RAM budgets, the
//! weight value types and index encodings allowed, alignment, the C compiler and its flags. Adding a target
//! is adding a file. [`TargetRef`] is how a user names one; [`Footprint`] measures an artefact and
//! [`Target::check`] reports a budget overflow.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use sculpt_runtime::format::{IndexEncoding, ValueType};

/// One deployment target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Flash available to the model (weights, graph, code) in bytes.
    pub flash_bytes: u64,
    /// RAM available to the model's activation arena in bytes.
    pub ram_bytes: u64,
    /// Weight value types the target runs (`f32`, `f16`, `i8`).
    #[serde(with = "crate::compile::codes::names")]
    pub value_types: Vec<ValueType>,
    /// Sparse index encodings its weights may use (`gap8`, `idx16`, `idx32`, `rice`).
    #[serde(with = "crate::compile::codes::names")]
    pub index_encodings: Vec<IndexEncoding>,
    /// What the per-layer weight storage optimises: `size` (default) or `speed`.
    #[serde(default)]
    pub layout: crate::compile::passes::layout::Objective,
    /// Alignment in bytes the target needs for weights in place (a power of two; `.scb` aligns to 16).
    pub alignment: u64,
    pub cc: String,
    pub cflags: Vec<String>,
    /// The emulated board that runs this target's code for `sculpt verify --on-target`; none for targets
    /// that are not checked on a board.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board: Option<Board>,
}

/// How `sculpt verify --on-target` builds and runs code for a target (`[board]` in the target file): the
/// target's `cc` and `cflags` compile, `ldflags` (and the linker script and startup file, paths relative to
/// the targets directory) link, and `runner` followed by the image runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    #[serde(default)]
    pub description: String,
    /// How the harness reaches the host: `semihosting` (bare metal) or `hosted` (an OS, stdio).
    pub io: crate::compile::emit::c_harness::Io,
    /// The emulator and its arguments; the image path is appended (and, for `hosted`, the input and output
    /// files).
    pub runner: Vec<String>,
    #[serde(default)]
    pub ldflags: Vec<String>,
    #[serde(default)]
    pub linker_script: Option<String>,
    #[serde(default)]
    pub startup: Option<String>,
    /// The SysTick clock of the emulated board in Hz. With `-icount shift=0` in `runner` (one virtual
    /// nanosecond per instruction) the harness's SysTick ticks give instructions executed: ticks × 10⁹ / Hz.
    #[serde(default)]
    pub systick_hz: Option<u64>,
    /// The Rust target triple that runs the no_std runtime on this board (`rustup target add` it).
    #[serde(default)]
    pub rust_target: Option<String>,
    /// The optimisation level the no_std runtime is built with for this board (default `s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_opt_level: Option<OptLevel>,
}

/// A Rust optimisation level (`opt-level` of a Cargo profile): `"0"` to `"3"`, `"s"` (small) or `"z"`
/// (smallest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum OptLevel {
    #[serde(rename = "0")]
    O0,
    #[serde(rename = "1")]
    O1,
    #[serde(rename = "2")]
    O2,
    #[serde(rename = "3")]
    O3,
    #[default]
    #[serde(rename = "s")]
    Small,
    #[serde(rename = "z")]
    Smallest,
}

impl OptLevel {
    /// The value of `opt-level` in a Cargo profile: `0` to `3` (integers), `"s"` or `"z"`.
    pub fn cargo_value(self) -> &'static str {
        match self {
            OptLevel::O0 => "0",
            OptLevel::O1 => "1",
            OptLevel::O2 => "2",
            OptLevel::O3 => "3",
            OptLevel::Small => "\"s\"",
            OptLevel::Smallest => "\"z\"",
        }
    }

    /// Short name: `0` to `3`, `s`, `z`.
    pub fn name(self) -> &'static str {
        self.cargo_value().trim_matches('"')
    }
}

/// How a user names a target (`--target`, `--on-target`): a target file, or a name looked up in a targets
/// directory, then among the targets built into sculpt, then in the `targets/` directory of its sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetRef {
    /// A target file: a path with a directory part or a `.toml` extension.
    File(PathBuf),
    /// A target name: letters, digits, `-`, `_` and `.`, not starting with `.`.
    Name(String),
}

/// A target and the directory its board files (linker script, startup code) are named relative to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub target: Target,
    pub dir: PathBuf,
}

impl std::str::FromStr for TargetRef {
    type Err = Error;

    /// Errors on an empty text and on one that is neither a path nor a valid name.
    fn from_str(text: &str) -> Result<TargetRef> {
        let path = Path::new(text);
        let is_file = path.extension().is_some_and(|x| x == "toml")
            || path.components().count() > 1
            || text.contains(std::path::MAIN_SEPARATOR)
            || text.contains('/');
        if is_file {
            return Ok(TargetRef::File(path.to_path_buf()));
        }
        let valid = !text.is_empty()
            && !text.starts_with('.')
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(Error::Invalid(format!(
                "{} is neither a target name (letters, digits, '-', '_', '.') nor a path to a target .toml file",
                crate::error::quote(text)
            )));
        }
        Ok(TargetRef::Name(text.to_string()))
    }
}

impl std::fmt::Display for TargetRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetRef::File(p) => write!(f, "{}", p.display()),
            TargetRef::Name(n) => write!(f, "{n}"),
        }
    }
}

impl TargetRef {
    /// Loads the target: a file from its path (board files next to it); a name from `<dir>/<name>.toml`,
    /// else a built-in target, else the sources' `targets/` (board files in the directory it came from, or
    /// `dir` for a built-in one). Errors name the file that cannot be read or is invalid, or list the
    /// targets known for an unknown name.
    pub fn resolve(&self, dir: &Path) -> Result<Resolved> {
        match self {
            TargetRef::File(p) => {
                if !p.is_file() {
                    return Err(Error::Invalid(format!(
                        "target file {} does not exist or is not a file",
                        p.display()
                    )));
                }
                let target = Target::load(p)?;
                let dir = p
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
                Ok(Resolved { target, dir })
            }
            TargetRef::Name(name) => {
                let file = dir.join(format!("{name}.toml"));
                if file.exists() {
                    return Ok(Resolved {
                        target: Target::load(&file)?,
                        dir: dir.to_path_buf(),
                    });
                }
                if let Some(target) = Target::builtin(name) {
                    return Ok(Resolved {
                        target,
                        dir: dir.to_path_buf(),
                    });
                }
                let shipped = shipped_dir();
                let file = shipped.join(format!("{name}.toml"));
                if file.is_file() {
                    return Ok(Resolved {
                        target: Target::load(&file)?,
                        dir: shipped,
                    });
                }
                let mut known: Vec<String> = BUILTIN.iter().map(|(n, _)| n.to_string()).collect();
                for d in [dir, shipped.as_path()] {
                    known.extend(Target::names_in(d));
                }
                known.sort();
                known.dedup();
                Err(Error::Invalid(format!(
                    "unknown target {}: no {name}.toml in {} and no built-in target of that name (known: {})",
                    crate::error::quote(name),
                    dir.display(),
                    known.join(", ")
                )))
            }
        }
    }
}

/// The `targets/` directory of the sculpt sources this binary was built from (it may not exist where the
/// binary runs).
pub fn shipped_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("targets")
}

const BUILTIN: [(&str, &str); 3] = [
    (
        "host-x86_64",
        include_str!("../../targets/host-x86_64.toml"),
    ),
    ("cortex-m4f", include_str!("../../targets/cortex-m4f.toml")),
    ("cortex-m7", include_str!("../../targets/cortex-m7.toml")),
];

/// What an artefact needs: flash (its bytes) and RAM (its arena).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Footprint {
    pub flash_bytes: u64,
    pub ram_bytes: u64,
}

impl Footprint {
    /// The footprint of a `.scb` file: its size in flash and its arena in RAM. Errors if it is not valid.
    pub fn of_scb(bytes: &[u8]) -> Result<Footprint> {
        let m = sculpt_runtime::Model::parse(bytes)
            .map_err(|e| Error::Invalid(format!("not a valid .scb model: {e}")))?;
        Ok(Footprint {
            flash_bytes: bytes.len() as u64,
            ram_bytes: m.arena_size() as u64,
        })
    }
}

impl Target {
    /// Reads and validates a target file.
    pub fn load(path: &Path) -> Result<Target> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Target::parse(&text, path)
    }

    /// Parses and validates a target description; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Target> {
        let t: Target = toml::from_str(text)
            .map_err(|e| Error::format(origin, format!("invalid target: {e}")))?;
        t.validate().map_err(|msg| Error::format(origin, msg))?;
        Ok(t)
    }

    /// The targets shipped in `targets/`, built into the binary so it runs from anywhere.
    pub fn builtin(name: &str) -> Option<Target> {
        let (_, text) = BUILTIN.iter().find(|(n, _)| *n == name)?;
        Some(
            Target::parse(text, Path::new(&format!("targets/{name}.toml")))
                .expect("shipped targets are valid"),
        )
    }

    /// Loads `<dir>/<name>.toml`.
    pub fn load_named(dir: &Path, name: &str) -> Result<Target> {
        Target::load(&dir.join(format!("{name}.toml")))
    }

    /// Every target in `dir`, sorted by name.
    pub fn load_all(dir: &Path) -> Result<Vec<Target>> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        paths.iter().map(|p| Target::load(p)).collect()
    }

    /// The names of the `.toml` files in `dir` (none when it cannot be read).
    fn names_in(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|e| {
                let p = e.ok()?.path();
                (p.extension()? == "toml").then(|| p.file_stem()?.to_str().map(String::from))?
            })
            .collect()
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("name is empty".into());
        }
        if self.flash_bytes == 0 || self.ram_bytes == 0 {
            return Err("flash_bytes and ram_bytes must be positive".into());
        }
        if self.value_types.is_empty() {
            return Err("value_types is empty".into());
        }
        if self.value_types.contains(&ValueType::I32) {
            return Err("value_types: i32 is no weight value type".into());
        }
        if self.index_encodings.contains(&IndexEncoding::Dense) {
            return Err(
                "index_encodings: dense is always allowed, list only sparse encodings".into(),
            );
        }
        if !self.alignment.is_power_of_two() {
            return Err(format!(
                "alignment {} is not a power of two",
                self.alignment
            ));
        }
        if self.cc.trim().is_empty() {
            return Err("cc is empty".into());
        }
        if let Some(b) = &self.board {
            if b.runner.first().is_none_or(|r| r.trim().is_empty()) {
                return Err("board.runner is empty".into());
            }
            if b.systick_hz == Some(0) {
                return Err("board.systick_hz must be positive".into());
            }
            if b.io == crate::compile::emit::c_harness::Io::Semihosting && b.linker_script.is_none()
            {
                return Err("board.linker_script is required for a semihosting board".into());
            }
        }
        Ok(())
    }

    /// Errors when the footprint exceeds a budget, saying by how much.
    pub fn check(&self, what: &str, need: &Footprint) -> Result<()> {
        let mut over = Vec::new();
        if need.flash_bytes > self.flash_bytes {
            over.push(format!(
                "flash: needs {} bytes, {} has {} (over by {} bytes)",
                need.flash_bytes,
                self.name,
                self.flash_bytes,
                need.flash_bytes - self.flash_bytes
            ));
        }
        if need.ram_bytes > self.ram_bytes {
            over.push(format!(
                "RAM: needs {} bytes, {} has {} (over by {} bytes)",
                need.ram_bytes,
                self.name,
                self.ram_bytes,
                need.ram_bytes - self.ram_bytes
            ));
        }
        if over.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "{what} does not fit target {}: {}",
                self.name,
                over.join("; ")
            )))
        }
    }

    /// A one-line report of an estimated footprint ([`Footprint::of_scb`]) against the budgets, saying what
    /// the estimate leaves out.
    pub fn report(&self, what: &str, need: &Footprint) -> String {
        format!(
            "{what} on {}: flash {}, RAM {} (estimate: the .scb file and its arena, without the code \
             (C kernels or the runtime), compiler and C library helpers and the stack; measured where the \
             target's toolchain is installed)",
            self.name,
            share(need.flash_bytes, self.flash_bytes),
            share(need.ram_bytes, self.ram_bytes),
        )
    }

    /// A one-line report of a footprint measured in the linked image, beside the estimate.
    pub fn report_measured(
        &self,
        what: &str,
        measured: &Footprint,
        estimate: &Footprint,
    ) -> String {
        format!(
            "{what} on {}: flash {} (estimate {}), RAM {} (estimate {}) (measured in the image linked \
             with {}: code and helpers included, static RAM without the stack)",
            self.name,
            share(measured.flash_bytes, self.flash_bytes),
            estimate.flash_bytes,
            share(measured.ram_bytes, self.ram_bytes),
            estimate.ram_bytes,
            self.cc,
        )
    }
}

/// `need / have bytes (p%)`.
fn share(need: u64, have: u64) -> String {
    format!(
        "{need} / {have} bytes ({:.1}%)",
        100.0 * need as f64 / have as f64
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_board(board: &str) -> String {
        format!(
            "name = \"t\"\nflash_bytes = 1\nram_bytes = 1\nvalue_types = [\"f32\"]\nindex_encodings = []\n\
             alignment = 4\ncc = \"cc\"\ncflags = []\n\n[board]\n{board}"
        )
    }

    #[test]
    fn a_board_is_checked_when_loaded() {
        let ok =
            with_board("io = \"semihosting\"\nrunner = [\"qemu\"]\nlinker_script = \"a.ld\"\n");
        assert!(Target::parse(&ok, Path::new("t.toml"))
            .unwrap()
            .board
            .is_some());
        for (bad, why) in [
            (
                "io = \"semihosting\"\nrunner = [\"qemu\"]\n",
                "linker_script",
            ),
            ("io = \"hosted\"\nrunner = []\n", "runner"),
            (
                "io = \"hosted\"\nrunner = [\"q\"]\nsystick_hz = 0\n",
                "systick_hz",
            ),
            ("io = \"serial\"\nrunner = [\"q\"]\n", "io"),
            ("io = \"hosted\"\nrunner = [\"q\"]\nspeed = 1\n", "speed"),
            (
                "io = \"hosted\"\nrunner = [\"q\"]\nruntime_opt_level = \"fast\"\n",
                "runtime_opt_level",
            ),
        ] {
            let e = Target::parse(&with_board(bad), Path::new("t.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("t.toml") && e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn the_runtime_opt_level_is_small_unless_the_board_says_otherwise() {
        let b = |extra: &str| {
            Target::parse(
                &with_board(&format!("io = \"hosted\"\nrunner = [\"q\"]\n{extra}")),
                Path::new("t.toml"),
            )
            .unwrap()
            .board
            .unwrap()
            .runtime_opt_level
            .unwrap_or_default()
        };
        assert_eq!(b(""), OptLevel::Small);
        assert_eq!(b("runtime_opt_level = \"z\""), OptLevel::Smallest);
        assert_eq!(b("runtime_opt_level = \"3\"").cargo_value(), "3");
        assert_eq!(OptLevel::Smallest.cargo_value(), "\"z\"");
    }

    #[test]
    fn a_target_reference_is_a_file_or_a_name() {
        let r = |s: &str| s.parse::<TargetRef>();
        assert_eq!(
            r("cortex-m4f").unwrap(),
            TargetRef::Name("cortex-m4f".into())
        );
        assert_eq!(r("v1.2_b").unwrap(), TargetRef::Name("v1.2_b".into()));
        for f in ["board.toml", "dir/board", "./board", "/abs/x.toml"] {
            assert_eq!(r(f).unwrap(), TargetRef::File(f.into()), "{f}");
        }
        for bad in ["", "a b", ".hidden", "m4f;rm"] {
            let e = r(bad).unwrap_err().to_string();
            assert!(e.contains("neither a target name"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_target_name_resolves_to_its_file_then_the_built_in_one() {
        let d = tempfile::tempdir().unwrap();
        let mine = with_board("io = \"hosted\"\nrunner = [\"q\"]\n")
            .replace("name = \"t\"", "name = \"cortex-m7\"");
        std::fs::write(d.path().join("cortex-m7.toml"), mine).unwrap();
        let m7 = TargetRef::Name("cortex-m7".into())
            .resolve(d.path())
            .unwrap();
        assert_eq!((m7.target.flash_bytes, m7.dir.as_path()), (1, d.path()));
        let m4 = TargetRef::Name("cortex-m4f".into())
            .resolve(d.path())
            .unwrap();
        assert_eq!(m4.target, Target::builtin("cortex-m4f").unwrap());
        let e = TargetRef::Name("no-such-board".into())
            .resolve(d.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown target 'no-such-board'") && e.contains("cortex-m4f"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_or_broken_target_file_is_a_clear_error() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("gone.toml");
        let e = TargetRef::File(missing.clone())
            .resolve(d.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("gone.toml") && e.contains("does not exist"),
            "{e}"
        );
        let broken = d.path().join("broken.toml");
        std::fs::write(&broken, "name = 3").unwrap();
        let e = TargetRef::File(broken)
            .resolve(d.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("broken.toml") && e.contains("invalid target"),
            "{e}"
        );
        let ok = d.path().join("ok.toml");
        std::fs::write(&ok, with_board("io = \"hosted\"\nrunner = [\"q\"]\n")).unwrap();
        let r = TargetRef::File(ok).resolve(Path::new("elsewhere")).unwrap();
        assert_eq!((r.target.name.as_str(), r.dir.as_path()), ("t", d.path()));
    }
}
