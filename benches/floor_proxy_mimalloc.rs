//! The floor of `benches/compare.sh` (`benches/floor_proxy.rs`, unchanged)
//! with the gateway's allocator, mimalloc: the `floor-mi` target. The plain
//! floor keeps glibc's allocator, as a bare Pingora proxy has; this one
//! tells how much of the gateway's distance to it the allocator alone
//! closes, so the ratio against the floor is not flattered by it.
//!
//!     cargo run --release --example floor_proxy_mimalloc -- LISTEN UPSTREAM [THREADS]

#![forbid(unsafe_code)]

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "floor_proxy.rs"]
mod floor;

fn main() {
    floor::main();
}
