//! The `sigil` executable, built under this crate so that its integration tests can run it as a
//! child process (`CARGO_BIN_EXE_sigil_it`): a test that needs a process of its own, such as
//! one with its own `SOFTHSM2_CONF`, starts it.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    sigil_server::entry::main()
}
