//! `stackube-proxy`: each tenant's Services, programmed with nftables inside the tenant's
//! Neutron router namespace (replaces kube-proxy). See the library for how.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    limit_malloc_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(stackube_proxy::run(stackube_proxy::Args::parse()))
}

/// glibc's allocator gives threads arenas of their own, up to 8 per CPU: the watch pages
/// decoded on the runtime's threads and the full sync's netlink batch built on another then
/// leave memory in each. With two, single benchmark runs at 10,000 Services peaked at 49.1 MiB
/// instead of 55.7 (one arena: 41.5 MiB, but a full sync slower by 0.8 s); the full sync's time
/// moved within the runs' noise. `MALLOC_ARENA_MAX`, when set, wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        const M_ARENA_MAX: i32 = -8;
        #[allow(unsafe_code)]
        // SAFETY: mallopt only sets an allocator parameter; it is called before any other
        // thread exists.
        unsafe {
            unsafe extern "C" {
                fn mallopt(param: i32, value: i32) -> i32;
            }
            mallopt(M_ARENA_MAX, 2);
        }
    }
}
