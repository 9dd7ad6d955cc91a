"""The CNI exec protocol (CNI spec 1.0, github.com/containernetworking/cni SPEC.md): run a
network configuration list's plugins for ADD, CHECK and DEL, and keep each attachment's
result so DEL gets exactly what ADD returned — also after a daemon crash."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from pallet.errors import InvalidArgument, NotFound, SystemError_

DEFAULT_PATH = ["/usr/lib/cni", "/opt/cni/bin", "/usr/libexec/cni"]
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0")


class CNIError(SystemError_):
    """A plugin's error result: code and msg as the plugin reported them."""


def load_conflist(data: bytes | str, where: str = "conflist") -> dict[str, Any]:
    try:
        conf = json.loads(data)
    except ValueError as e:
        raise InvalidArgument(f"{where}: invalid JSON: {e}") from None
    if not isinstance(conf, dict):
        raise InvalidArgument(f"{where}: not a JSON object")
    if "plugins" not in conf and "type" in conf:
        # A single network configuration: a list of one, as libcni does.
        conf = {"cniVersion": conf.get("cniVersion", "1.0.0"), "name": conf.get("name"),
                "plugins": [conf]}
    for key in ("cniVersion", "name"):
        if not isinstance(conf.get(key), str) or not conf[key]:
            raise InvalidArgument(f"{where}: {key} is required (a string)")
    if conf["cniVersion"] not in SUPPORTED_VERSIONS:
        raise InvalidArgument(f"{where}: cniVersion {conf['cniVersion']} is not supported "
                              f"({', '.join(SUPPORTED_VERSIONS)})")
    plugins = conf.get("plugins")
    if not isinstance(plugins, list) or not plugins:
        raise InvalidArgument(f"{where}: plugins must be a non-empty list")
    for i, p in enumerate(plugins):
        if not isinstance(p, dict) or not isinstance(p.get("type"), str):
            raise InvalidArgument(f"{where}: plugins[{i}].type is required")
    return conf


class Attachment:
    """One container interface on one network."""

    def __init__(self, container_id: str, netns: str, ifname: str = "eth0",
                 args: dict[str, str] | None = None,
                 capability_args: dict[str, Any] | None = None) -> None:
        self.container_id = container_id
        self.netns = netns
        self.ifname = ifname
        self.args = args or {}
        self.capability_args = capability_args or {}


class CNI:
    def __init__(self, plugin_dirs: list[str] | None = None,
                 cache_dir: str = "/var/lib/pallet/cni/results") -> None:
        self.plugin_dirs = plugin_dirs or DEFAULT_PATH
        self.cache_dir = cache_dir

    def _find(self, kind: str) -> str:
        for d in self.plugin_dirs:
            path = os.path.join(d, kind)
            if os.access(path, os.X_OK):
                return path
        raise NotFound(f"CNI plugin {kind!r} not found in {':'.join(self.plugin_dirs)}")

    def _exec(self, command: str, conf: dict[str, Any], plugin: dict[str, Any],
              att: Attachment, prev: dict[str, Any] | None) -> dict[str, Any] | None:
        net = dict(plugin)
        net["cniVersion"] = conf["cniVersion"]
        net["name"] = conf["name"]
        if prev is not None:
            net["prevResult"] = prev
        caps = plugin.get("capabilities") or {}
        runtime_config = {k: v for k, v in att.capability_args.items() if caps.get(k)}
        if runtime_config:
            net["runtimeConfig"] = runtime_config
        env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": att.container_id,
            "CNI_NETNS": att.netns,
            "CNI_IFNAME": att.ifname,
            "CNI_ARGS": ";".join(f"{k}={v}" for k, v in att.args.items()),
            "CNI_PATH": ":".join(self.plugin_dirs),
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        }
        path = self._find(plugin["type"])
        proc = subprocess.run([path], input=json.dumps(net).encode(), env=env,
                              capture_output=True, timeout=60)
        out = proc.stdout.decode(errors="replace").strip()
        if proc.returncode != 0:
            try:
                err = json.loads(out)
                msg = f"{err.get('msg', '')} {err.get('details', '')}".strip()
                code = err.get("code")
            except ValueError:
                msg, code = (out or proc.stderr.decode(errors="replace")).strip(), None
            raise CNIError(f"CNI {command} {conf['name']}/{plugin['type']}: {msg}"
                           + (f" (code {code})" if code is not None else ""))
        if command != "ADD":
            return None
        try:
            return json.loads(out) if out else prev
        except ValueError:
            raise CNIError(f"CNI ADD {plugin['type']}: unreadable result {out[:200]!r}") \
                from None

    # --- the three operations of a network list -------------------------------------------

    def add(self, conf: dict[str, Any], att: Attachment) -> dict[str, Any]:
        """ADD through the chain; on failure the plugins already run are undone (DEL)."""
        result: dict[str, Any] | None = None
        done = 0
        try:
            for plugin in conf["plugins"]:
                result = self._exec("ADD", conf, plugin, att, result)
                done += 1
        except BaseException:
            for plugin in reversed(conf["plugins"][:done]):
                try:
                    self._exec("DEL", conf, plugin, att, result)
                except CNIError:
                    pass
            raise
        assert result is not None
        self._save(conf, att, result)
        return result

    def check(self, conf: dict[str, Any], att: Attachment) -> None:
        cached = self.cached(conf["name"], att.container_id, att.ifname)
        prev = cached["result"] if cached else None
        for plugin in conf["plugins"]:
            self._exec("CHECK", conf, plugin, att, prev)

    def delete(self, conf: dict[str, Any] | None, att: Attachment,
               network: str | None = None) -> None:
        """DEL in reverse order with the cached ADD result and the list ADD ran (the network
        may have been removed since, and an attachment may have run a part of it); `conf`
        serves when nothing was cached."""
        name = conf["name"] if conf else network
        if name is None:
            raise InvalidArgument("CNI DEL: a network configuration or name is required")
        cached = self.cached(name, att.container_id, att.ifname)
        if cached and isinstance(cached.get("config"), dict):
            conf = cached["config"]
        if conf is None:
            return
        prev = cached["result"] if cached else None
        if cached:
            att.capability_args = cached.get("capabilityArgs") or att.capability_args
        errors = []
        for plugin in reversed(conf["plugins"]):
            try:
                self._exec("DEL", conf, plugin, att, prev)
            except CNIError as e:
                errors.append(str(e))
        if errors:
            raise CNIError("; ".join(errors))
        self._forget(name, att.container_id, att.ifname)

    # --- the result cache --------------------------------------------------------------

    def _cache_path(self, network: str, container_id: str, ifname: str) -> str:
        return os.path.join(self.cache_dir, f"{network}-{container_id}-{ifname}")

    def _save(self, conf: dict[str, Any], att: Attachment, result: dict[str, Any]) -> None:
        os.makedirs(self.cache_dir, exist_ok=True)
        doc = {"kind": "cniCacheV1", "containerId": att.container_id, "ifName": att.ifname,
               "networkName": conf["name"], "netns": att.netns, "config": conf,
               "capabilityArgs": att.capability_args, "cniArgs": att.args, "result": result}
        path = self._cache_path(conf["name"], att.container_id, att.ifname)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def cached(self, network: str, container_id: str, ifname: str) -> dict[str, Any] | None:
        try:
            with open(self._cache_path(network, container_id, ifname)) as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return None

    def _forget(self, network: str, container_id: str, ifname: str) -> None:
        try:
            os.unlink(self._cache_path(network, container_id, ifname))
        except FileNotFoundError:
            pass

    def attachments(self) -> list[dict[str, Any]]:
        """Every cached attachment: what a restarted daemon must DEL for gone containers."""
        out = []
        try:
            names = sorted(os.listdir(self.cache_dir))
        except FileNotFoundError:
            return out
        for name in names:
            if name.endswith(".tmp"):
                continue
            try:
                with open(os.path.join(self.cache_dir, name)) as f:
                    out.append(json.load(f))
            except (OSError, ValueError):
                continue
        return out
