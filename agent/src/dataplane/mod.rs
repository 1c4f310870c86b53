//! Loading and attaching the embedded eBPF programs.
