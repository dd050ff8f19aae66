//! Job specs: the typed model, and loading a YAML file into a checked spec with positioned problems.

mod checks;
pub mod load;
pub mod model;
mod problem;
mod schema;
pub(crate) mod size;
mod yaml;

// Durations are shared with the schedule and the command line; they stay reachable here as before.
pub use crate::duration;
pub use load::{LoadedSpec, Problem, SpecFile, load_dir, load_file, load_source};
pub use model::JobSpec;
