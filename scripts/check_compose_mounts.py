#!/usr/bin/env python3
"""Checks that every host path a Compose file bind-mounts, builds from or includes exists.

    python3 scripts/check_compose_mounts.py instrumentation/docker-compose.yaml
        prints one line per host path (bind-mount sources, build contexts,
        included Compose files, and files the command line names inside a
        mount) and exits 1 if any is missing

    python3 scripts/check_compose_mounts.py --thespian-configs instrumentation/docker-compose.yaml
        prints "service<TAB>config file<TAB>scripts folder" (host paths) for
        every service whose CONFIG_FILE is a bind-mounted file, so that
        scripts/validate.sh can run `thespian check` on exactly what Compose
        would mount

Relative sources are resolved against the Compose file's folder, as Compose
does; ${VAR:-default} takes the default (or the variable, if set).
"""

import os
import re
import sys
from pathlib import Path

import yaml  # PyYAML, installed alongside yamllint

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def interpolate(value: str) -> str:
    return _VAR.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), value)


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


def host_path_for(container_path: str, mounts) -> Path | None:
    """The host path that Compose would show at container_path, if mounted."""
    for host, target in mounts:
        if container_path == target:
            return host
        if container_path.startswith(target.rstrip("/") + "/"):
            return host / os.path.relpath(container_path, target)
    return None


def main(argv: list[str]) -> int:
    configs_mode = argv[:1] == ["--thespian-configs"]
    if configs_mode:
        argv = argv[1:]
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    compose_file = Path(argv[0]).resolve()
    base = compose_file.parent
    compose = yaml.safe_load(compose_file.read_text())
    missing = 0

    if not configs_mode:
        for include in compose.get("include") or []:
            path = include if isinstance(include, str) else include.get("path")
            for one in [path] if isinstance(path, str) else path or []:
                host = (base / interpolate(one)).resolve()
                exists = host.exists()
                missing += not exists
                shown = os.path.relpath(host, Path.cwd())
                print(f"{'ok     ' if exists else 'MISSING'} (include): {shown}")

    for name, service in (compose.get("services") or {}).items():
        mounts = list(bind_mounts(service, base))
        if configs_mode:
            env = environment(service)
            config = host_path_for(env.get("CONFIG_FILE", ""), mounts)
            scripts = host_path_for(env.get("SCRIPTS_DIR", "/scripts"), mounts)
            if config is not None:
                print(f"{name}\t{config}\t{scripts or ''}")
            continue

        checked = list(mounts)
        build = service.get("build")
        if build is not None:
            context = build if isinstance(build, str) else build.get("context", ".")
            checked.insert(0, ((base / interpolate(context)).resolve(), "(build context)"))
        # Files the command line names inside a mount, e.g. --config=/etc/otelcol/x.yaml
        command = service.get("command") or []
        for arg in command if isinstance(command, list) else command.split():
            path = interpolate(str(arg)).split("=", 1)[-1]
            host = host_path_for(path, mounts) if path.startswith("/") else None
            if host is not None and (host, path) not in mounts:
                checked.append((host, path))
        for host, target in checked:
            exists = host.exists()
            missing += not exists
            shown = os.path.relpath(host, Path.cwd())
            print(f"{'ok     ' if exists else 'MISSING'} {name}: {shown} -> {target}")

    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
