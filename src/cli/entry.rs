//! The entry point: parse the command line, run one command, print its outcome, return its exit code.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use super::Ctx;
use super::args::{CatchupArg, Cli, ColorChoice, Command, LogFormat, NotifyCommand, StoreCommand};
use super::output::{Output, Report};
use crate::clock::SystemClock;
use crate::error::{Error, Result, exit};
use crate::home::Home;
use crate::store::StateChange;

pub fn run() -> ExitCode {
    // A TAB in a shell that sourced `jobsctl completions`: answer and exit before anything else runs.
    super::completions::answer_if_asked();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error, args.iter().any(|a| a == "--json")),
    };
    if let Some(outcome) = run_without_home(&cli) {
        return outcome;
    }
    let (daemon, json_logs) = match &cli.command {
        Command::Scheduler { log_format, .. } => (true, *log_format == LogFormat::Json),
        _ => (false, false),
    };
    init_tracing(cli.verbose, daemon, json_logs);
    let out = Output {
        json: cli.json,
        color: use_color(cli.color),
    };
    let home = match cli.home.clone().map_or_else(std::env::current_dir, Ok) {
        // A mistyped --home must not quietly become a new, empty home.
        Ok(root) if !root.is_dir() && needs_home(&cli.command) => {
            let error = Error::NotAHome { path: root };
            out.error(&error);
            return ExitCode::from(error.exit_code());
        }
        // Absolute from here on: a run's cwd, JOBS_RUN_DIR and the receipt's paths must not depend on
        // a relative home such as `.` (which, once its `.` is dropped, would name nothing).
        Ok(root) => Home::new(std::path::absolute(&root).unwrap_or(root)),
        Err(e) => {
            let error = Error::io("find the current directory", PathBuf::from("."), e);
            out.error(&error);
            return ExitCode::from(error.exit_code());
        }
    };
    let home = match store_named(cli.store.as_deref()) {
        Ok(store) => home.with_store(store),
        Err(error) => {
            out.error(&error);
            return ExitCode::from(error.exit_code());
        }
    };
    if needs_home(&cli.command) && !home.exists() {
        let error = Error::NotAHome {
            path: home.root().to_path_buf(),
        };
        out.error(&error);
        return ExitCode::from(error.exit_code());
    }
    let ctx = Ctx {
        home,
        out,
        clock: std::sync::Arc::new(SystemClock),
    };
    match dispatch(&ctx, cli.command) {
        Ok(report) => {
            ctx.out.report(&report);
            ExitCode::from(report.error.as_ref().map_or(exit::OK, Error::exit_code))
        }
        Err(error) => {
            // A SQLite store's errors name its file (the hints speak of it); a PostgreSQL store's
            // name its URL already.
            let error = match crate::store::locate(&ctx.home) {
                Ok(crate::store::Location::Postgres { .. }) => error,
                _ => error.naming_store(&ctx.home.db_path()),
            };
            ctx.out.error(&error);
            ExitCode::from(error.exit_code())
        }
    }
}

/// Every command works in a home but `schema` and `validate` of files named on the command line,
/// which read only those files.
fn needs_home(command: &Command) -> bool {
    match command {
        Command::Schema => false,
        Command::Validate { paths } => paths.is_empty(),
        _ => true,
    }
}

/// The commands about the program itself, not a home: they work from any directory (a shell's start-up
/// file runs `shell-init` wherever the shell starts).
fn run_without_home(cli: &Cli) -> Option<ExitCode> {
    let out = Output {
        json: cli.json,
        color: false,
    };
    let outcome = match &cli.command {
        Command::Completions { shell } => super::completions::run(*shell, &out),
        Command::Man { dir } => super::man::run(dir.as_deref(), &out),
        Command::ShellInit { shell } => super::shell_init::run(*shell, &out),
        Command::Reaper => crate::reaper::run().map(|()| Report::streamed(String::new())),
        _ => return None,
    };
    Some(match outcome {
        Ok(report) => {
            out.report(&report);
            ExitCode::from(exit::OK)
        }
        Err(error) => {
            out.error(&error);
            ExitCode::from(error.exit_code())
        }
    })
}

fn dispatch(ctx: &Ctx, command: Command) -> Result<Report> {
    match command {
        Command::Validate { paths } => super::validate::run(ctx, &paths),
        Command::List => super::list::run(ctx),
        Command::Show { id, run: None } => super::show::run(ctx, &id),
        Command::Show { id, run: Some(seq) } => super::show_run::run(ctx, &id, seq),
        Command::Graph { dot } => super::graph::run(ctx, dot),
        Command::Next { id, count, after } => super::next::run(ctx, &id, usize::from(count), after),
        Command::Schema => Ok(super::schema::run()),
        Command::Run {
            ids,
            all,
            sequential,
            detach,
            no_trigger,
            force,
        } => super::run::run(
            ctx,
            &super::run::RunArgs {
                ids,
                all,
                sequential,
                detach,
                no_trigger,
                force,
            },
        ),
        Command::History {
            id,
            status,
            limit,
            since,
            before,
            upstream,
        } => super::history::run(
            ctx,
            id.as_deref(),
            status,
            limit,
            since.as_deref(),
            before,
            upstream,
        ),
        Command::Exec { id, force } => super::run::exec_detached(ctx, &id, force),
        Command::Scheduler {
            dry_run,
            shutdown_grace,
            listen,
            token_file,
            node,
            lease,
            node_dead_after,
            labels,
            max_runs,
            ..
        } => {
            let listen = super::serve::listen_from(ctx, listen, token_file)?;
            let cluster = crate::scheduler::ClusterOptions::new(
                node,
                lease.as_duration(),
                node_dead_after.as_duration(),
            )?
            .with_work(labels, max_runs)?;
            super::scheduler::run(ctx, dry_run, shutdown_grace.as_duration(), listen, cluster)
        }
        Command::Serve { listen, token_file } => {
            let listen = super::serve::listen_from(ctx, listen, token_file)?.ok_or_else(|| {
                Error::Usage {
                    message: "give --listen ADDR (such as 127.0.0.1:9180), or set server.listen in config.yaml".into(),
                }
            })?;
            super::serve::run(ctx, &listen)
        }
        command @ (Command::Pause { .. }
        | Command::Resume { .. }
        | Command::Disable { .. }
        | Command::Enable { .. }
        | Command::Cancel { .. }) => dispatch_operator(ctx, command),
        Command::Status => super::status::run(ctx),
        Command::Replay { id, run, force } => super::replay::run(ctx, &id, run, force),
        Command::Prune { id, dry_run } => super::prune::run(ctx, id.as_deref(), dry_run),
        Command::Backup { path, force } => super::backup::run(ctx, &path, force),
        Command::Notify {
            command: NotifyCommand::Test { id },
        } => super::notify::test(ctx, &id),
        Command::Store {
            command: StoreCommand::Copy { to },
        } => super::store_copy::run(ctx, &to),
        Command::Completions { .. }
        | Command::Man { .. }
        | Command::ShellInit { .. }
        | Command::Reaper => Err(Error::Internal {
            message: "a command without a home reached the dispatch of home commands".into(),
        }),
        Command::Tail {
            id,
            run,
            follow,
            forever,
        } => super::tail::run(
            ctx,
            &id,
            &super::tail::TailArgs {
                run,
                follow,
                forever,
            },
        ),
    }
}

/// The operator's commands on a job: its state, and cancelling its runs.
fn dispatch_operator(ctx: &Ctx, command: Command) -> Result<Report> {
    match command {
        Command::Pause {
            id,
            reason,
            cancel,
            no_wait,
        } => super::lifecycle::run(
            ctx,
            &id,
            StateChange::Pause,
            reason.as_deref(),
            super::lifecycle::cancelling(cancel, no_wait),
        ),
        Command::Resume {
            id,
            catchup,
            reason,
        } => {
            let catchup = match catchup {
                CatchupArg::None => None,
                CatchupArg::Latest => Some(crate::policy::Catchup::Latest),
                CatchupArg::All => Some(crate::policy::Catchup::All),
            };
            super::lifecycle::run(
                ctx,
                &id,
                StateChange::Resume { catchup },
                reason.as_deref(),
                None,
            )
        }
        Command::Disable {
            id,
            reason,
            cancel,
            no_wait,
        } => super::lifecycle::run(
            ctx,
            &id,
            StateChange::Disable,
            reason.as_deref(),
            super::lifecycle::cancelling(cancel, no_wait),
        ),
        Command::Enable { id, reason } => {
            super::lifecycle::run(ctx, &id, StateChange::Enable, reason.as_deref(), None)
        }
        Command::Cancel {
            id,
            run,
            all,
            reason,
            no_wait,
        } => super::cancel::run(
            ctx,
            &id,
            &super::cancel::CancelArgs {
                run,
                all,
                reason,
                wait: !no_wait,
            },
        ),
        _ => Err(Error::Internal {
            message: "a command other than an operator's reached the dispatch of operator commands"
                .into(),
        }),
    }
}

/// clap's own errors: help and version print as usual; real usage errors become `usage` (exit 2),
/// as JSON when `--json` was on the command line.
fn usage_error(error: &clap::Error, json: bool) -> ExitCode {
    let code = u8::try_from(error.exit_code()).unwrap_or(exit::USAGE);
    if code == exit::OK || !json {
        let _ = error.print();
        return ExitCode::from(code);
    }
    let rendered = error.render().to_string();
    let first_line = rendered.lines().next().unwrap_or_default();
    let message = first_line.trim_start_matches("error: ").to_owned();
    let error = Error::Usage { message };
    Output {
        json: true,
        color: false,
    }
    .error(&error);
    ExitCode::from(error.exit_code())
}

fn use_color(choice: ColorChoice) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
        }
    }
}

/// Logs go to stderr. Commands log warnings only unless `-v`; the scheduler logs what it does.
fn init_tracing(verbose: u8, daemon: bool, json: bool) {
    let level = match verbose + u8::from(daemon) {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        2 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // The database driver logs every statement with its parameters at debug level, spec texts and
    // their `env:` values among them: it is heard at info and above only, whatever -v asks.
    let targets = tracing_subscriber::filter::Targets::new()
        .with_default(level)
        .with_target("tokio_postgres", tracing::Level::INFO)
        .with_target("postgres", tracing::Level::INFO);
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(targets);
    let _ = if json {
        registry.with(layer.json()).try_init()
    } else {
        registry
            .with(layer.with_ansi(std::io::stderr().is_terminal()))
            .try_init()
    };
}

/// The store named from outside the home: `--store`, else `JOBS_STORE`.
fn store_named(flag: Option<&str>) -> Result<Option<String>> {
    if let Some(url) = flag {
        refuse_password_in_flag("--store", url)?;
        return Ok(Some(url.to_owned()));
    }
    Ok(std::env::var("JOBS_STORE")
        .ok()
        .filter(|url| !url.is_empty()))
}

/// A password in a flag is refused, since every user of the machine can read a command line (`ps`).
pub(super) fn refuse_password_in_flag(flag: &str, url: &str) -> Result<()> {
    if !crate::store::postgres_url::has_password(url) {
        return Ok(());
    }
    let masked = crate::store::postgres_url::masked(url);
    Err(Error::Usage {
        message: format!(
            "{flag} {masked} has a password in it, which any user can read on the command line; give it in PGPASSWORD or the config's store_password_file"
        ),
    })
}
