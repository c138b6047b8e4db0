// Copyright 2019 Octavian Oncescu

#![no_std]

//! A drop-in global allocator wrapper around the [mimalloc](https://github.com/microsoft/mimalloc) allocator.
//! Mimalloc is a general purpose, performance oriented allocator built by Microsoft.
//!
//! ## Usage
//! ```rust,ignore
//! use mimalloc::MiMalloc;
//!
//! #[global_allocator]
//! static GLOBAL: MiMalloc = MiMalloc;
//! ```
//!
//! ## Usage with secure mode
//! Using secure mode adds guard pages,
//! randomized allocation, encrypted free lists, etc. The performance penalty is usually
//! around 10% according to [mimalloc's](https://github.com/microsoft/mimalloc)
//! own benchmarks.
//!
//! To enable secure mode, put in `Cargo.toml`:
//! ```toml
//! [dependencies]
//! mimalloc = { version = "*", features = ["secure"] }
//! ```

extern crate libmimalloc_sys as ffi;

#[cfg(feature = "extended")]
mod extended;

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;
use ffi::*;

/// Drop-in mimalloc global allocator.
///
/// ## Usage
/// ```rust,ignore
/// use mimalloc::MiMalloc;
///
/// #[global_allocator]
/// static GLOBAL: MiMalloc = MiMalloc;
/// ```
pub struct MiMalloc;

// drio patch (mimalloc 1): plain entry points where they already satisfy the
// layout. Rust passes an alignment with every allocation, nearly always 8 or
// less, and `mi_malloc_aligned` serves only small power-of-two-friendly
// requests on its fast path: every other size (any request over 1 KiB, or a
// 24-byte one) goes through `mi_*_aligned_at_generic` and, unless the block
// size is a power of two, over-allocates `size + align - 1` bytes into the
// next size class. `mi_malloc` already returns blocks that start on a 16-byte
// boundary (`MI_PAGE_MIN_START_BLOCK_ALIGN`) and whose sizes are multiples of
// the word, and of 16 for a request that is a multiple of 16 (bins above
// eight words step by at least two words), so such layouts take it.
#[inline(always)]
fn plain_fits(layout: &Layout) -> bool {
    const WORD: usize = core::mem::size_of::<usize>();
    let align = layout.align();
    align <= WORD || (WORD == 8 && align <= 16 && layout.size() % 16 == 0)
}

unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if plain_fits(&layout) {
            return mi_malloc(layout.size()) as *mut u8;
        }
        mi_malloc_aligned(layout.size(), layout.align()) as *mut u8
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if plain_fits(&layout) {
            return mi_zalloc(layout.size()) as *mut u8;
        }
        mi_zalloc_aligned(layout.size(), layout.align()) as *mut u8
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        mi_free(ptr as *mut c_void);
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // The new block must satisfy the same alignment at the new size; a
        // block kept in place is already aligned (it was allocated for it).
        let new = Layout::from_size_align_unchecked(new_size, layout.align());
        if plain_fits(&new) {
            return mi_realloc(ptr as *mut c_void, new_size) as *mut u8;
        }
        mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_frees_allocated_memory() {
        unsafe {
            let layout = Layout::from_size_align(8, 8).unwrap();
            let alloc = MiMalloc;

            let ptr = alloc.alloc(layout);
            alloc.dealloc(ptr, layout);
        }
    }

    #[test]
    fn it_frees_allocated_big_memory() {
        unsafe {
            let layout = Layout::from_size_align(1 << 20, 32).unwrap();
            let alloc = MiMalloc;

            let ptr = alloc.alloc(layout);
            alloc.dealloc(ptr, layout);
        }
    }

    #[test]
    fn it_frees_zero_allocated_memory() {
        unsafe {
            let layout = Layout::from_size_align(8, 8).unwrap();
            let alloc = MiMalloc;

            let ptr = alloc.alloc_zeroed(layout);
            alloc.dealloc(ptr, layout);
        }
    }

    #[test]
    fn it_frees_zero_allocated_big_memory() {
        unsafe {
            let layout = Layout::from_size_align(1 << 20, 32).unwrap();
            let alloc = MiMalloc;

            let ptr = alloc.alloc_zeroed(layout);
            alloc.dealloc(ptr, layout);
        }
    }

    #[test]
    fn it_frees_reallocated_memory() {
        unsafe {
            let layout = Layout::from_size_align(8, 8).unwrap();
            let alloc = MiMalloc;

            let ptr = alloc.alloc(layout);
            let ptr = alloc.realloc(ptr, layout, 16);
            alloc.dealloc(ptr, layout);
        }
    }

    #[test]
    fn it_frees_reallocated_big_memory() {
        unsafe {
            let layout = Layout::from_size_align(1 << 20, 32).unwrap();
            let alloc = MiMalloc;

            let ptr = alloc.alloc(layout);
            let ptr = alloc.realloc(ptr, layout, 2 << 20);
            alloc.dealloc(ptr, layout);
        }
    }

    // drio patch (mimalloc 1): every layout, plain or aligned path, gets a
    // block aligned as asked, zeroed when asked, and keeps its bytes when
    // moved by realloc.
    #[test]
    fn every_layout_is_aligned_zeroed_and_kept() {
        let alloc = MiMalloc;
        for align in [1usize, 2, 4, 8, 16, 32, 64, 4096] {
            for size in (1..=80).chain([96, 100, 1000, 1024, 1500, 4000, 4096, 70_000]) {
                let layout = Layout::from_size_align(size, align).unwrap();
                unsafe {
                    let p = alloc.alloc_zeroed(layout);
                    assert!(!p.is_null() && p as usize % align == 0, "{size} {align}");
                    for i in 0..size {
                        assert_eq!(*p.add(i), 0);
                        *p.add(i) = i as u8;
                    }
                    let grown = size * 3 + 5;
                    let q = alloc.realloc(p, layout, grown);
                    assert!(!q.is_null() && q as usize % align == 0, "{size}->{grown} {align}");
                    for i in 0..size {
                        assert_eq!(*q.add(i), i as u8);
                    }
                    alloc.dealloc(q, Layout::from_size_align(grown, align).unwrap());
                }
            }
        }
    }
}
