//! The `vidfarm` binary: everything happens in [`vidfarm::cli`].

fn main() -> std::process::ExitCode {
    vidfarm::cli::main()
}
