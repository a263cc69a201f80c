//! Advice from what a run left behind: [`diagnose`] ranks the likely causes
//! of a disappointing LoRA from the artist's words and the run's
//! [`evidence`] (loss, epochs, repeats, captions), each with its fix and the
//! checkpoint to try. Reads the run's records; never changes them.

pub mod diagnose;
pub mod evidence;
