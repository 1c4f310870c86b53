mod attach;
mod parity;
mod pipeline;
mod test_run;
