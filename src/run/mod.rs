//! Training execution: starting a trainer as a supervised child process,
//! reading its progress, recognising how it fails, and stopping it.
//!
//! [`process`] starts a child in its own process group and reads its two
//! streams line by line (tqdm's `\r` redraws included); [`progress`] turns
//! each backend's progress bars into steps and losses; [`diagnose`] turns
//! its error lines into a [`diagnose::Diagnosis`] with what to do;
//! [`monitor`] watches a run with all three, logs it and stops it when it
//! cannot succeed; [`dry_run`] is Gate 4's short run of the exact plan;
//! [`launch`] starts the training itself under a [`supervisor`] of its own
//! (a separate process, so a run outlives the server), which retries an
//! out-of-memory run at half the batch ([`oom`]), keeps the newest
//! [`checkpoints`], warns of a flat or rising loss ([`trend`]) and writes
//! `progress.md` and the loss chart ([`report`]).
//!
//! `run` never imports `gates` (DESIGN decision 13): the gates decide
//! whether a run may start, and Gate 4 calls [`dry_run::dry_run`].

pub mod checkpoints;
pub mod diagnose;
pub mod dry_run;
pub mod launch;
pub mod monitor;
pub mod oom;
pub mod process;
pub mod progress;
pub mod report;
pub mod supervisor;
pub mod trend;
