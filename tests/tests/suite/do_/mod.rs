mod ambiguous;
mod double_api;
mod double_drop;
mod double_tutorial;
mod faults;
mod log_flood;
mod reload;
mod tutorial;
