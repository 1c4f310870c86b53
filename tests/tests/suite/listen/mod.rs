mod diag;
mod failover;
mod kernel;
