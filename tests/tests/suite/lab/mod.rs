mod hostile;
mod keepalived;
mod neighbours;
mod run_basic;
mod scale;
mod selftest;
mod xvrrp;
