//! `sigil`: parse the command line, set up logging, run the subcommand
//! ([`sigil_server::entry::main`]).

fn main() -> std::process::ExitCode {
    sigil_server::entry::main()
}
