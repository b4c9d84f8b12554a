use std::process::ExitCode;

fn main() -> ExitCode {
    restore_sigpipe();
    match sculpt::cli::main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    msg.push_str(": ");
                    msg.push_str(&c);
                }
            }
            eprintln!("error: {}", sculpt::error::clip_lines(&msg, 40));
            ExitCode::FAILURE
        }
    }
}

/// Lets a closed pipe end the process quietly, as it ends any Unix filter (`sculpt run ... | head -1`), instead
/// of making the next `println!` panic. Output files are written atomically, so none is left half-written.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any other thread exists; resetting a signal's disposition
    // to its default has no memory-safety preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
