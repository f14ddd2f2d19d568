//! Upstream mirrors: the pool of each upstream ([`pool`]: order, health, cooldown) and the
//! download task that fills the cache from it ([`fetch`]).

pub(crate) mod fetch;
pub(crate) mod pool;
