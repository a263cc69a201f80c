//! How the training process asks the C allocator for memory during the
//! steps. A training step allocates and frees the same large buffers every
//! time (activations, im2col columns, attention scores: 5–500 MB each at
//! 512 px). glibc hands every block above 32 MB, and the heap's free top,
//! back to the kernel at once, so each step maps them again and the kernel
//! zeroes every page on first touch: at 512 px that was over half of a
//! step's time (18.9 M page faults, 30 s of system time in a 45 s step on
//! the 2-core machine, docs/benchmarks.md "Native engine"). Keeping freed
//! memory in the process lets the next step reuse it.
//!
//! Called once the model is loaded, so loading keeps its own bound (the
//! model plus one tensor, `engine::memory_tests`); the training process's
//! resident memory then stays at its peak until it exits, which a training
//! child process does when the run ends. On other C libraries it does
//! nothing.

/// Keeps memory freed from now on inside the process for reuse: no separate
/// mappings for large blocks, no returning the heap's free top to the
/// kernel.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes glibc's tuning parameters; it takes
        // the allocator's own lock and is safe to call from any thread at
        // any time. A rejected value leaves the old setting (return 0).
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0);
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
            libc::mallopt(libc::M_TOP_PAD, 256 << 20);
        }
    }
}
