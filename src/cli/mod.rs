//! The command-line interface: clap derive, one file per subcommand.

/// Entry point of the `sculpt` binary.
pub fn main() -> anyhow::Result<()> {
    Ok(())
}
