mod announce;
mod netlink;
mod offload;
mod vrrp_socket;
