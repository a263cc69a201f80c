//! Measuring the product on generated sets, outside the domain:
//! [`duplicates`] writes a labelled set of pictures with known copies and
//! runs `ategnatos bench duplicates` on it.

pub mod duplicates;
