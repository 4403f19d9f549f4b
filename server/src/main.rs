//! The `dangjian-server` command: `init`, `serve`, `demo`, `migrate`, `audit-verify`.

/// mimalloc rather than glibc's allocator: rows, values and sealed fields are made on one
/// thread (the SQLite driver's worker, a sealing thread) and freed on another, and glibc
/// serialises such frees on a lock of the arena they came from (`docs/benchmarks.md` §7c).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    dangjian_server::cli::main()
}
