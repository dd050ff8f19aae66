//! Job specs: the typed model, durations, and loading a YAML file into a checked spec with positioned
//! problems.

// Durations are shared with the schedule and the command line; they stay reachable here as before.
pub use crate::duration;
pub mod load;
pub mod model;
pub mod size;

pub use load::{LoadedSpec, Problem, SpecFile, load_dir, load_file, load_source};
pub use model::JobSpec;
