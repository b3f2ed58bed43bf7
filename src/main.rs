//! The `bursar` binary: parse, run, map the result to an exit code (see `bursar --help`).

fn main() -> std::process::ExitCode {
    bursar::cli::main()
}
