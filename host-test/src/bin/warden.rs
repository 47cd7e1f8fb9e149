//! `warden`: see `warden --help`.

fn main() -> std::process::ExitCode {
    warden_host_test::cli::main()
}
