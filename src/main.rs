fn main() -> anyhow::Result<()> {
    sculpt::cli::main()
}
