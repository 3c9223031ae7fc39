#!/usr/bin/env python3
"""Checks that every host path a Compose file bind-mounts or builds from exists.

    python3 scripts/check_compose_mounts.py instrumentation/docker-compose.yaml
        prints one line per host path (bind-mount sources, build contexts,
        files the command line names inside a mount, and the folders that
        mounted Grafana dashboard providers read) and exits 1 if any is missing

    python3 scripts/check_compose_mounts.py --thespian-configs instrumentation/docker-compose.yaml
        prints "service<TAB>config file<TAB>scripts folder" (host paths) for
        every service whose CONFIG_FILE is a bind-mounted file, so that
        scripts/validate.sh can run `thespian check` on exactly what Compose
        would mount

Every service is checked, whatever its profile. A service that `extends` one
in another file takes that service's mounts, environment, build and command,
with its relative paths resolved against that other file's folder, as Compose
does; files the top-level `include` names are checked too. Relative sources
are resolved against the Compose file's folder; ${VAR:-default} takes the
default (or the variable, if set).
"""

import os
import re
import sys
from pathlib import Path

import yaml  # PyYAML, installed alongside yamllint

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def interpolate(value: str) -> str:
    return _VAR.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), value)


def load(compose_file: Path) -> dict:
    return yaml.safe_load(compose_file.read_text()) or {}


def bind_mounts(service: dict, base: Path):
    """Yields (host path, container path) for each bind mount of a service."""
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            parts = interpolate(volume).split(":")
            source, target = parts[0], parts[1] if len(parts) > 1 else parts[0]
            # A bare name ("tempo-data:/var/tempo") is a named volume.
            if not source.startswith((".", "/", "~")):
                continue
        elif volume.get("type") == "bind":
            source, target = interpolate(volume["source"]), volume["target"]
        else:
            continue
        yield (base / os.path.expanduser(source)).resolve(), target


def environment(service: dict) -> dict:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: interpolate(str(value)) for key, value in env.items()}


def resolved(compose_file: Path, name: str, problems: list, depth: int = 0) -> dict:
    """A service's mounts, environment, build context and command, with what
    it `extends` merged underneath (the service's own keys win)."""
    base = compose_file.parent
    service = (load(compose_file).get("services") or {}).get(name)
    if service is None:
        problems.append((compose_file, f"(service {name} to extend)"))
        return {"mounts": {}, "env": {}, "build": None, "command": None}
    merged = {"mounts": {}, "env": {}, "build": None, "command": None}
    extends = service.get("extends")
    if extends is not None and depth < 10:
        if isinstance(extends, str):
            extends = {"service": extends}
        parent = (base / extends["file"]).resolve() if "file" in extends else compose_file
        if parent.exists():
            merged = resolved(parent, extends["service"], problems, depth + 1)
        else:
            problems.append((parent, f"(extends {extends['service']})"))
    for host, target in bind_mounts(service, base):
        merged["mounts"][target] = host
    merged["env"].update(environment(service))
    build = service.get("build")
    if build is not None:
        context = build if isinstance(build, str) else build.get("context", ".")
        merged["build"] = (base / interpolate(context)).resolve()
    if service.get("command") is not None:
        command = service["command"]
        merged["command"] = command if isinstance(command, list) else command.split()
    return merged


def host_path_for(container_path: str, mounts: dict) -> Path | None:
    """The host path that Compose would show at container_path, if mounted."""
    for target, host in mounts.items():
        if container_path == target:
            return host
        if container_path.startswith(target.rstrip("/") + "/"):
            return host / os.path.relpath(container_path, target)
    return None


def dashboard_folders(mounts: dict):
    """Yields (host path or None, container path) for every folder that a
    mounted Grafana dashboard provider reads, so that a provider pointing at
    a folder the container lacks is caught."""
    for target, host in mounts.items():
        if "/provisioning" not in target:
            continue
        files = sorted(host.rglob("*.y*ml")) if host.is_dir() else [host]
        for file in files:
            inside = target if file == host else f"{target.rstrip('/')}/{file.relative_to(host)}"
            if "/provisioning/dashboards/" not in inside or not file.is_file():
                continue
            for provider in (yaml.safe_load(file.read_text()) or {}).get("providers") or []:
                path = (provider.get("options") or {}).get("path")
                if path:
                    yield host_path_for(path, mounts), path


def compose_files(compose_file: Path):
    """The file and, depth first, every file its top-level `include` names."""
    yield compose_file
    for entry in load(compose_file).get("include") or []:
        paths = entry if isinstance(entry, str) else entry.get("path")
        for path in [paths] if isinstance(paths, str) else paths or []:
            yield from compose_files((compose_file.parent / interpolate(path)).resolve())


def main(argv: list[str]) -> int:
    configs_mode = argv[:1] == ["--thespian-configs"]
    if configs_mode:
        argv = argv[1:]
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    missing = 0

    for compose_file in compose_files(Path(argv[0]).resolve()):
        if not compose_file.exists():
            print(f"MISSING {os.path.relpath(compose_file, Path.cwd())} (included)")
            missing += 1
            continue
        for name in load(compose_file).get("services") or {}:
            problems: list = []
            service = resolved(compose_file, name, problems)
            mounts = service["mounts"]
            if configs_mode:
                env = service["env"]
                config = host_path_for(env.get("CONFIG_FILE", ""), mounts)
                scripts = host_path_for(env.get("SCRIPTS_DIR", "/scripts"), mounts)
                if config is not None:
                    print(f"{name}\t{config}\t{scripts or ''}")
                continue

            checked = [(host, target) for target, host in mounts.items()] + problems
            if service["build"] is not None:
                checked.insert(0, (service["build"], "(build context)"))
            # Files the command line names inside a mount, e.g. --config=/etc/otelcol/x.yaml
            for arg in service["command"] or []:
                path = interpolate(str(arg)).split("=", 1)[-1]
                host = host_path_for(path, mounts) if path.startswith("/") else None
                if host is not None and mounts.get(path) != host:
                    checked.append((host, path))
            for host, path in dashboard_folders(mounts):
                checked.append((host or Path("(not mounted)"), f"{path} (dashboard provider)"))
            for host, target in checked:
                exists = host.exists() and host.is_absolute()
                missing += not exists
                shown = os.path.relpath(host, Path.cwd()) if host.is_absolute() else str(host)
                shown = str(host) if shown.startswith("..") else shown
                print(f"{'ok     ' if exists else 'MISSING'} {name}: {shown} -> {target}")

    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
