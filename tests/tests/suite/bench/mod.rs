mod busy;
mod do_;
mod flood;
mod listen;
mod rest;
mod scale;
mod timing;
mod xdp;
