"""Container networking the way containerd and CRI-O do it: network namespaces, and the
standard CNI plugins (bridge, host-local, loopback, portmap, firewall) run through
the CNI exec protocol (CNI spec 1.0)."""
