//! Measuring the product on generated sets, outside the domain:
//! [`duplicates`] writes a labelled set of pictures with known copies and
//! runs `ategnatos bench duplicates` on it; [`monitor`] times watching a
//! trainer that prints progress lines fast.

pub mod duplicates;
pub mod monitor;
