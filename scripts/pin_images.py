"""Pin every image a stack deploys to the digest its registry serves (`make pin-images STACK=production`).

    venv/bin/python scripts/pin_images.py --stack production            # pin the stack file's tags
    venv/bin/python scripts/pin_images.py --stack production --check    # every pinned digest still served?
    venv/bin/python scripts/pin_images.py --stack production --refresh  # re-resolve pinned tags too

The images are those the stack's settings deploy: the services' `image`, the stores', exporters' and
snapshot runner's, the bundled monitoring servers' — from the stack file where it sets them, else the
settings' defaults. A tag (`repository:tag`) in the stack file is resolved with the OCI distribution API
(scripts/oci.py) and written back as `repository:tag@sha256:<digest>`: the runtime pulls by digest, the
tag stays for people. Only the value changes in the file; its comments and layout are kept. A default
is never rewritten (they are pinned in components/config, with their source); `--check` asks the
registry for every pinned digest, defaults included, and fails when one is no longer served, or, in
production, when an image is not pinned at all. Credentials: `docker login <registry>`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from components.config import (  # noqa: E402 - the project on sys.path first
    EXTERNAL_SECRET_KEYS,
    PROJECT,
    STRUCTURED_KEYS,
    Settings,
    SettingsError,
    load_settings,
)
from scripts.oci import RegistryClient, RegistryError, docker_credentials, parse_reference  # noqa: E402


@dataclass(frozen=True)
class ImageUse:
    """One image the stack deploys: its config path (`app.services.api.image`) and reference."""

    path: str
    image: str


def deployed_images(settings: Settings) -> list[ImageUse]:
    """Every image reference the settings deploy, by config path (a built service has none: the
    program deploys the digest it pushes)."""
    uses = [
        ImageUse(f"app.services.{name}.image", svc.image)
        for name, svc in sorted(settings.app.enabled_services().items())
        if svc.image is not None
    ]
    data = settings.data
    for store, store_settings in data.stores().items():
        if store_settings.mode != "in-cluster":
            continue
        uses.append(ImageUse(f"data.{store}.image", store_settings.image))
        exporter = getattr(store_settings, "exporter", None)
        if exporter is not None and exporter.enabled:
            uses.append(ImageUse(f"data.{store}.exporter.image", exporter.image))
    if settings.pools_connections():
        uses.append(ImageUse("data.postgres.pooler.image", data.postgres.pooler.image))
    chroma = data.chroma
    if chroma.mode == "in-cluster" and chroma.snapshots.volume_snapshot_class is not None:
        uses.append(ImageUse("data.chroma.snapshots.image", chroma.snapshots.image))
    monitoring = settings.monitoring
    if monitoring.mode == "bundled":
        images = monitoring.images
        uses += [
            ImageUse("monitoring.images.prometheus", images.prometheus),
            ImageUse("monitoring.images.alertmanager", images.alertmanager),
            ImageUse("monitoring.images.grafana", images.grafana),
        ]
        if monitoring.kube_state_metrics.enabled:
            uses.append(ImageUse("monitoring.images.kubeStateMetrics", images.kube_state_metrics))
    return uses


def stack_settings(stack: str, document: Mapping[str, Any]) -> Settings:
    """The stack's settings, validated as the program validates them, except that production's rule
    "images pinned by digest" is left out: that is what this command is for."""
    config = document.get("config") or {}
    structured = {key: config.get(f"{PROJECT}:{key}") for key in STRUCTURED_KEYS}
    # Secrets are irrelevant to which images deploy: count every external secret as set.
    return load_settings(stack, structured, [], dict.fromkeys(EXTERNAL_SECRET_KEYS, True), None, pinned_images=False)


# --- the stack file, edited as text ----------------------------------------------------------------


def scalar_node(text: str, path: Sequence[str]) -> yaml.ScalarNode | None:
    """The scalar at `path` (mapping keys from the document root) in a YAML text, with its position."""
    node: Any = yaml.compose(text)
    for key in path:
        if not isinstance(node, yaml.MappingNode):
            return None
        node = next((value for name, value in node.value if getattr(name, "value", None) == key), None)
        if node is None:
            return None
    return node if isinstance(node, yaml.ScalarNode) else None


def file_path(config_path: str) -> list[str]:
    """`app.services.api.image` -> the keys in Pulumi.<stack>.yaml: config, support-platform:app, ..."""
    head, *rest = config_path.split(".")
    return ["config", f"{PROJECT}:{head}", *rest]


def with_value(text: str, path: Sequence[str], value: str) -> str:
    """The YAML text with the scalar at `path` replaced by `value`; every other byte stays."""
    node = scalar_node(text, path)
    if node is None:
        raise KeyError(".".join(path))
    start, end = node.start_mark.index, node.end_mark.index
    quote = text[start] if node.style in ("'", '"') else ""
    if quote == "'" or (not quote and not _plain_safe(value)):
        rendered = "'" + value.replace("'", "''") + "'"
    elif quote == '"':
        rendered = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    else:
        rendered = value
    updated = text[:start] + rendered + text[end:]
    check = scalar_node(updated, path)
    if check is None or check.value != value:
        raise ValueError(f"rewriting {'.'.join(path)} would not read back as {value!r}")
    return updated


def _plain_safe(value: str) -> bool:
    try:
        return yaml.safe_load(value) == value and "\n" not in value
    except yaml.YAMLError:
        return False


# --- the command ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    lines: list[str]
    problems: list[str]
    text: str


def pin(
    stack: str,
    text: str,
    client: RegistryClient,
    check: bool = False,
    refresh: bool = False,
    only: Sequence[str] = (),
) -> Outcome:
    document = yaml.safe_load(text) or {}
    try:
        settings = stack_settings(stack, document)
    except SettingsError as error:
        return Outcome([], [f"the stack's settings do not validate, so its images are unknown:\n{error}"], text)
    production = (document.get("config") or {}).get(f"{PROJECT}:environment", stack) == "production"
    lines: list[str] = []
    problems: list[str] = []
    for use in _selected(deployed_images(settings), only):
        in_file = scalar_node(text, file_path(use.path)) is not None
        where = "stack file" if in_file else "default"
        try:
            ref = parse_reference(use.image)
        except RegistryError as error:
            problems.append(f"{use.path}: {error}")
            continue
        try:
            if check:
                if ref.digest is None:
                    message = f"{use.path} ({where}): {use.image} is not pinned by digest"
                    (problems if production else lines).append(message)
                    continue
                served = client.manifest(ref)
                lines.append(f"{use.path} ({where}): {use.image} is served ({served.describe()})")
            elif ref.digest is None or refresh:
                if ref.tag is None:
                    lines.append(f"{use.path} ({where}): {use.image} has no tag to resolve; left as it is")
                    continue
                resolved = client.manifest(ref, ref.tag)
                pinned = ref.pinned(resolved.digest)
                if pinned == use.image:
                    lines.append(f"{use.path} ({where}): {use.image} unchanged ({resolved.describe()})")
                elif in_file:
                    text = with_value(text, file_path(use.path), pinned)
                    lines.append(f"{use.path}: {use.image} -> {pinned} ({resolved.describe()})")
                else:
                    problems.append(
                        f"{use.path} (default): {ref.name}:{ref.tag} now resolves to {resolved.digest}, not the "
                        f"default's {ref.digest or 'tag'}; pin the new digest in components/config, or give "
                        f"{use.path} in Pulumi.{stack}.yaml"
                    )
            else:
                lines.append(f"{use.path} ({where}): {use.image} already pinned")
        except RegistryError as error:
            problems.append(f"{use.path} ({where}): {error}")
    return Outcome(lines, problems, text)


def _selected(uses: Sequence[ImageUse], only: Sequence[str]) -> Iterator[ImageUse]:
    for use in uses:
        if not only or any(use.path == p or use.path.startswith(p.rstrip(".") + ".") for p in only):
            yield use


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, choices=("dev", "staging", "production"))
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="verify every pinned digest is still served")
    mode.add_argument("--refresh", action="store_true", help="re-resolve the tags of pinned stack-file images too")
    parser.add_argument(
        "--only", action="append", default=[], metavar="PATH", help="only config paths under PATH (repeatable)"
    )
    args = parser.parse_args(argv)
    path = ROOT / f"Pulumi.{args.stack}.yaml"
    client = RegistryClient(credentials=docker_credentials())
    outcome = pin(args.stack, path.read_text(), client, check=args.check, refresh=args.refresh, only=args.only)
    for line in outcome.lines:
        print(line)
    if not args.check and outcome.text != path.read_text():
        path.write_text(outcome.text)
        print(f"wrote {path.name}: review and commit it (the digests are what production will run)")
    if outcome.problems:
        print("\n".join(f"error: {p}" for p in outcome.problems), file=sys.stderr)
        if args.check:
            print("pinned images that no registry serves cannot be pulled: pin them again with `make pin-images`")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
