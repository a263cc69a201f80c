//! Which pictures look alike: near-duplicates, variety, and setting pictures
//! aside.
//!
//! [`phash`] hashes what a picture looks like, from the thumbnails the
//! `thumbs` crate reads; [`hamming`] finds close hashes (and window hashes for
//! heavily cropped copies); [`crop_check`] takes a closer look at candidate
//! pairs; [`hash_cache`] remembers hashes of unchanged files; [`dedup`] groups
//! copies and suggests which to keep, and [`contact_sheet`] shows each group;
//! [`curate`] scores variety and picks subsets; [`quarantine`] moves files
//! aside and back, never deleting.

pub mod contact_sheet;
pub mod crop_check;
pub mod curate;
pub mod dedup;
pub mod hamming;
pub mod hash_cache;
pub mod phash;
pub mod quarantine;
