mod file;
mod interface;
mod process;
mod script;
mod v3_fast;
