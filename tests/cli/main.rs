//! Integration tests that drive the real `jobs` binary in temporary homes. One test binary, so the
//! suite links once.

mod common;
mod validate;
