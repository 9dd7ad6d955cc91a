"""A container's /etc/hosts and /etc/resolv.conf (docker's behaviour: the host's resolvers
minus loopback ones, or --dns/--dns-search/--dns-option; names of peers on user networks)."""

from __future__ import annotations

FALLBACK_DNS = ["8.8.8.8", "8.8.4.4"]


def hosts_file(hostname: str, ips: list[str], extra: list[tuple[str, str]] | None = None,
               peers: list[tuple[str, list[str]]] | None = None) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             "fe00::0\tip6-localnet", "ff00::0\tip6-mcastprefix", "ff02::1\tip6-allnodes",
             "ff02::2\tip6-allrouters"]
    for name, ip in extra or []:
        lines.append(f"{ip}\t{name}")
    for ip in ips:
        lines.append(f"{ip}\t{hostname}")
    for ip, names in peers or []:
        lines.append(f"{ip}\t{' '.join(names)}")
    return "\n".join(lines) + "\n"


def resolv_conf(host_text: str, dns: list[str] | None = None,
                search: list[str] | None = None, options: list[str] | None = None) -> str:
    servers, host_search, host_options = [], [], []
    for line in host_text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith(("#", ";")):
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            servers.append(fields[1])
        elif fields[0] == "search":
            host_search = fields[1:]
        elif fields[0] == "options":
            host_options = fields[1:]
    # A loopback resolver of the host is unreachable from the container's own netns.
    servers = dns or [s for s in servers if not s.startswith(("127.", "::1"))] or FALLBACK_DNS
    out = [f"nameserver {s}" for s in servers]
    if search if search is not None else host_search:
        out.append("search " + " ".join(search if search is not None else host_search))
    if options if options is not None else host_options:
        out.append("options " + " ".join(options if options is not None else host_options))
    return "\n".join(out) + "\n"
