//! The command line: clap wire types in `args`, what every command gets in `ctx`, one file per command
//! (each answering with a view), rendering in `output`, and the entry point that turns any outcome into
//! output and an exit code.

mod args;
mod backup;
mod cancel;
mod completions;
mod ctx;
mod entry;
mod graph;
mod history;
mod lifecycle;
mod list;
mod man;
mod next;
mod notify;
mod output;
mod prune;
mod replay;
mod run;
mod scheduler;
mod schema;
mod serve;
mod shell_init;
mod show;
mod show_run;
mod status;
mod store_copy;
mod tail;
mod validate;

pub use entry::run;

use ctx::Ctx;
