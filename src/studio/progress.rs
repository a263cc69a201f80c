//! How long work reports how far it got, and learns that it should stop.
//!
//! Domain functions take a `&dyn Progress`; the MCP job registry turns it into
//! progress notifications, the CLI into a progress bar, tests into nothing.

/// A sink for progress of one piece of long work.
pub trait Progress: Send + Sync {
    /// `done` of `total` units are finished; `message` says what is happening.
    fn report(&self, done: u64, total: Option<u64>, message: &str);

    /// True once the user asked to stop; long work checks this between units.
    fn is_cancelled(&self) -> bool {
        false
    }
}

/// Progress that goes nowhere.
pub struct NoProgress;

impl Progress for NoProgress {
    fn report(&self, _done: u64, _total: Option<u64>, _message: &str) {}
}
