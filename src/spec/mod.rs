//! Job specs: the typed model, and loading a YAML file into a checked spec with positioned problems.

pub(crate) mod checks;
pub mod defaults;
pub mod load;
pub mod model;
pub(crate) mod problem;
pub mod relations;
pub(crate) mod schema;
pub(crate) mod size;
pub mod stamps;
pub(crate) mod yaml;

// Durations are shared with the schedule and the command line; they stay reachable here as before.
pub use crate::duration;
pub use defaults::Defaults;
pub use load::{LoadedSpec, Problem, SpecFile, load_dir, load_file, load_source};
pub use model::JobSpec;
