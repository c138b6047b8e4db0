//! The gateway's global allocator (mimalloc, with the carried patch in
//! `patches/mimalloc`: layouts aligned to a word or less, and 16-aligned
//! multiples of 16, take mimalloc's plain entry points). Whatever path a
//! layout takes, what Rust asked for is what it gets: the alignment, zeroed
//! memory from `vec![0; n]`, and its bytes kept when a `Vec` grows.
#![forbid(unsafe_code)]

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

macro_rules! aligned {
    ($name:ident, $align:literal) => {
        #[derive(Clone, Copy)]
        #[repr(C, align($align))]
        struct $name([u8; 3]);
    };
}
aligned!(A1, 1);
aligned!(A8, 8);
aligned!(A16, 16);
aligned!(A32, 32);
aligned!(A64, 64);
aligned!(A4096, 4096);

/// Allocates `n` values of `T` for every `n` in a range that crosses the
/// small, medium and large size classes, and checks alignment, content
/// and growth.
fn holds<T: Copy>(value: fn(u8) -> T, byte: fn(&T) -> u8) {
    let align = std::mem::align_of::<T>();
    for n in (1..=90).chain([100, 255, 256, 700, 1000, 1500, 5000]) {
        let mut v: Vec<T> = Vec::with_capacity(n);
        assert_eq!(v.as_ptr() as usize % align, 0, "{n} x align {align}");
        v.extend((0..n).map(|i| value(i as u8)));
        // Growth moves the values through realloc, aligned as before.
        v.reserve(n * 3 + 7);
        assert_eq!(v.as_ptr() as usize % align, 0, "grown {n} x align {align}");
        assert!(v.iter().enumerate().all(|(i, x)| byte(x) == i as u8));
        v.shrink_to_fit();
        assert_eq!(v.as_ptr() as usize % align, 0, "shrunk {n} x align {align}");
        assert!(v.iter().enumerate().all(|(i, x)| byte(x) == i as u8));
    }
}

#[test]
fn every_alignment_is_honoured_and_values_survive_growth() {
    holds(|b| A1([b; 3]), |x| x.0[0]);
    holds(|b| A8([b; 3]), |x| x.0[1]);
    holds(|b| A16([b; 3]), |x| x.0[2]);
    holds(|b| A32([b; 3]), |x| x.0[0]);
    holds(|b| A64([b; 3]), |x| x.0[1]);
    holds(|b| A4096([b; 3]), |x| x.0[2]);
    holds(|b| b as u64, |x| *x as u8);
    holds(|b| b as u128, |x| *x as u8);
}

#[test]
fn zeroed_allocations_are_zero_after_reuse() {
    // Dirty blocks of every size first, so zeroing cannot pass by luck of
    // fresh pages.
    for n in [24, 40, 1000, 1500, 5000, 70_000] {
        drop(vec![0xa5u8; n]);
        let z = vec![0u8; n];
        assert!(z.iter().all(|&b| b == 0), "{n} bytes");
        let z = vec![0u128; n / 16];
        assert!(z.iter().all(|&b| b == 0), "{n} bytes of u128");
        assert_eq!(z.as_ptr() as usize % 16, 0);
    }
}
