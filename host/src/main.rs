//! The `vidfarm` binary: everything happens in [`vidfarm::cli`].

mod allocator;

fn main() -> std::process::ExitCode {
    vidfarm::cli::main()
}
