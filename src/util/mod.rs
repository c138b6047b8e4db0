//! Small things every layer uses and that use nothing of the gateway's own:
//! randomness (see [`random`]) and the injectable wall clock (see [`clock`]).

pub(crate) mod clock;
pub(crate) mod random;
