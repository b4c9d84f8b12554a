//! Deployment targets (`targets/*.toml`, documented in `formats/targets.md`): flash and RAM budgets, the
//! weight value types and index encodings allowed, alignment, the C compiler and its flags. Adding a target
//! is adding a file. [`Footprint`] measures an artefact and [`Target::check`] reports a budget overflow.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::emit::binary::{IndexEncoding, ValueType};
use crate::error::{Error, Result};

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
    pub value_types: Vec<ValueType>,
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
}

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
        const BUILTIN: [(&str, &str); 3] = [
            (
                "host-x86_64",
                include_str!("../../targets/host-x86_64.toml"),
            ),
            ("cortex-m4f", include_str!("../../targets/cortex-m4f.toml")),
            ("cortex-m7", include_str!("../../targets/cortex-m7.toml")),
        ];
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
        let pct = |a: u64, b: u64| 100.0 * a as f64 / b as f64;
        format!(
            "{what} on {}: flash {} / {} bytes ({:.1}%), RAM {} / {} bytes ({:.1}%) \
             (estimate: file and arena, without code, library helpers and stack; verify --on-target measures them)",
            self.name,
            need.flash_bytes,
            self.flash_bytes,
            pct(need.flash_bytes, self.flash_bytes),
            need.ram_bytes,
            self.ram_bytes,
            pct(need.ram_bytes, self.ram_bytes)
        )
    }
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
        ] {
            let e = Target::parse(&with_board(bad), Path::new("t.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("t.toml") && e.contains(why), "{bad}: {e}");
        }
    }
}
