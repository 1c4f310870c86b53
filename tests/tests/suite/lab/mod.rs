mod keepalived;
mod neighbours;
mod root_files;
mod run_basic;
mod scale;
mod selftest;
mod xvrrp;
