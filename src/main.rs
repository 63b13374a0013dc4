//! The `remote-agent` binary: parse the command line, set up logging, hand over to the library.

fn main() -> std::process::ExitCode {
    remote_agent::cli::main()
}
