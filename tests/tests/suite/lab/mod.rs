mod keepalived;
mod neighbours;
mod recreate;
mod run_basic;
mod scale;
mod selftest;
mod xvrrp;
