//! The `dangjian-server` command: `init`, `serve`, `demo`, `migrate`, `audit-verify`.

fn main() -> std::process::ExitCode {
    dangjian_server::cli::main()
}
