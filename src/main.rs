fn main() -> std::process::ExitCode {
    tunebridge::cli::main()
}
