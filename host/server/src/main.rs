//! `sigil`: parse the command line, set up logging, run the subcommand
//! ([`sigil_server::entry::main`]).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    sigil_server::entry::main()
}
