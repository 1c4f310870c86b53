mod keepalived;
mod neighbours;
mod recreate;
mod root_files;
mod run_basic;
mod scale;
mod selftest;
mod xvrrp;
