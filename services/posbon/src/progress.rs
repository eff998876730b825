//! Progress of the command-line tool's bulk work (`replay`, `store copy`):
//! indicatif on stderr, drawn only when stderr is a terminal and `--quiet`
//! is not given, so that redirected output holds only the summary.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

fn target(quiet: bool) -> ProgressDrawTarget {
    if quiet {
        ProgressDrawTarget::hidden()
    } else {
        // Hidden by indicatif itself when stderr is not a terminal.
        ProgressDrawTarget::stderr()
    }
}

/// A bar over `total` bytes of input, with a message of counts beside it.
pub(crate) fn bytes(total: u64, quiet: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), target(quiet));
    if let Ok(style) = ProgressStyle::with_template(
        "{bar:30} {percent:>3}%  {binary_bytes}/{binary_total_bytes}  {elapsed}  {msg}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// A spinner for work of unknown size, with a message of counts beside it.
pub(crate) fn spinner(quiet: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, target(quiet));
    if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed}  {msg}") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}
