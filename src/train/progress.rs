//! The per-epoch progress bar (shown only on a terminal).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::method::Phase;

/// A bar over the `steps` of epoch `epoch` (0-based) of `phase`, or `None` when `show` is false.
pub fn epoch_bar(show: bool, steps: usize, phase: &Phase, epoch: usize) -> Option<ProgressBar> {
    if !show {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{prefix} [{wide_bar}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(format!(
        "{} epoch {}/{}",
        phase.label,
        epoch + 1,
        phase.epochs
    ));
    Some(bar)
}
