//! Small things every layer uses and that use nothing of the gateway's own:
//! randomness (see [`random`]).

pub mod random;
