//! The boundary around third-party executors (tract, ONNX Runtime's bindings): a panic inside them becomes an
//! error, printed nowhere, instead of aborting sculpt. Panics of sculpt's own code outside the boundary are
//! reported as usual.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use crate::error::{Error, Result};

thread_local! {
    /// How many boundaries the current thread is inside.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// The message of the last panic caught on this thread, with its location.
    static CAUGHT: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Installs, once per process, a panic hook that records (instead of printing) panics raised inside a
/// boundary and hands every other panic to the hook that was installed before.
fn install_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if DEPTH.with(Cell::get) > 0 {
                let msg = payload_text(info.payload());
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                CAUGHT.with(|c| *c.borrow_mut() = Some(format!("{msg}{at}")));
            } else {
                previous(info);
            }
        }));
    });
}

fn payload_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Runs `f`, turning a panic inside it into an error that says `who` failed on `what` (e.g. `"tract"`, a
/// file name) and quotes the panic message.
pub fn contain<T>(who: &str, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    install_hook();
    DEPTH.with(|d| d.set(d.get() + 1));
    let r = panic::catch_unwind(AssertUnwindSafe(f));
    DEPTH.with(|d| d.set(d.get() - 1));
    r.unwrap_or_else(|_| {
        let msg = CAUGHT
            .with(|c| c.borrow_mut().take())
            .unwrap_or_else(|| "no message".into());
        Err(Error::Invalid(format!(
            "{what}: {who} failed internally on this model ({}); it cannot run it",
            crate::error::clip_lines(&msg, 2)
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_inside_becomes_an_error_and_results_pass_through() {
        let e = contain::<()>("the engine", "m.onnx", || {
            let v: Vec<u32> = Vec::new();
            let zero = v.len() as u32;
            Ok(std::hint::black_box(7) / std::hint::black_box(zero)).map(|_| ())
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("m.onnx") && e.contains("the engine failed") && e.contains("divide by zero"),
            "{e}"
        );
        assert_eq!(contain("x", "y", || Ok(3)).unwrap(), 3);
        assert!(
            contain::<()>("x", "y", || Err(Error::Invalid("own".into())))
                .unwrap_err()
                .to_string()
                .contains("own")
        );
    }
}
