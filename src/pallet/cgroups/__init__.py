"""cgroups: one manager interface over the v1 hierarchies and the v2 unified hierarchy.

`Manager.for_config(cgroups_path, container_id)` picks what this host has: every mounted v1
hierarchy plus the unified one of a hybrid host, or the pure v2 tree.
"""

from pallet.cgroups.manager import Manager, host_hierarchies, resolve_path

__all__ = ["Manager", "host_hierarchies", "resolve_path"]
