//! Test labs: network namespaces, veth pairs and bridges, torn down by guards.
