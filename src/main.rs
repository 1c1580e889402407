//! The `fbuild` command: a thin client of the library (`fbuild::cli`).

// Transfers move data in 1 MiB messages through several buffers; with
// glibc's allocator each freed buffer went back to the kernel and the next
// one page-faulted in again (a fifth of the client's CPU on a 200 MB cache
// import; mimalloc's purging did the same). jemalloc keeps freed pages for a
// while and reuses them, as uv's binary does.
#[cfg(unix)]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    fbuild::cli::main()
}
