"""Image builds: what the program hands pulumi-docker, and the checks it makes before registering.

pulumi-docker 5.1.0's Image resolves `build.dockerfile` against the project directory (its working
directory), not against the context; its Check hashes the Dockerfile and every file of the context
not excluded by .dockerignore into `build.contextDigest`, and its Diff rebuilds and pushes when any
input differs from the last update (contextDigest, imageName, args, target, platform, registry
server). It cannot set labels, so the program writes the OCI labels into a derived Dockerfile
(`.image-build/<service>.Dockerfile`, next to nothing the context holds) that ends with the user's
Dockerfile plus the LABEL lines; everything it writes is a function of the settings, the context
and the source revision, so an unchanged context yields the same inputs and no rebuild.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

from components.config import BuildSettings

GENERATED_DIR = ".image-build"
LABEL_STAGE = "support-platform-labelled"
# Where pulumi-docker looks when DOCKER_HOST is unset: the system socket, then Docker Desktop's.
DEFAULT_DOCKER_HOSTS = ("unix:///var/run/docker.sock", "unix://{home}/.docker/run/docker.sock")


@dataclass(frozen=True)
class ImageBuild:
    """The provider's view of one build: paths relative to the project directory."""

    context: str
    dockerfile: str
    target: str | None
    labels: Mapping[str, str]
    dockerfile_text: str


def source_revision(project_dir: str, build: BuildSettings) -> str | None:
    """The revision label: the setting, else the last git commit that touched the context or Dockerfile.

    Not HEAD: a commit elsewhere in the repository (a README, a stack file) must not change the
    label, or every such commit would rebuild and roll an unchanged app. Uncommitted changes in the
    context give `<commit>-dirty`, which holds until they are committed. Outside a git work tree
    (or without git) there is no label unless the setting gives one.
    """
    if build.revision is not None:
        return build.revision
    paths = [build.context, os.path.join(build.context, build.dockerfile)]

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(  # noqa: S603 - fixed git arguments, paths from validated settings
                ["git", "-C", project_dir, *args],  # noqa: S607 - git from PATH, like the CLI does
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("log", "-1", "--format=%H", "--", *paths)
    if not commit:
        return None
    dirty = git("status", "--porcelain", "--", *paths)
    return f"{commit}-dirty" if dirty else commit


def oci_labels(build: BuildSettings, revision: str | None) -> dict[str, str]:
    labels = {"org.opencontainers.image.version": build.tag}
    if revision:
        labels["org.opencontainers.image.revision"] = revision
    if build.source:
        labels["org.opencontainers.image.source"] = build.source
    return labels


def _quoted(value: str) -> str:
    # Dockerfile LABEL values: double quotes, backslash escapes, and no variable expansion.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def labelled_dockerfile(original: str, labels: Mapping[str, str], target: str | None) -> tuple[str, str | None]:
    """The user's Dockerfile with the labels on the image that gets built, and the stage to build.

    Without a target the last stage is built: LABEL lines appended at the end belong to it. With a
    target, a stage built FROM it carries the labels, so an earlier stage gets them too.
    """
    # The comment names this module's former path: the derived Dockerfile is part of the build's
    # context digest, so another text would rebuild and push every built image once.
    lines = [original.rstrip("\n"), "", "# Added by support-platform (components/image.py): OCI labels."]
    if target is not None:
        lines.append(f"FROM {target} AS {LABEL_STAGE}")
    lines.extend(f"LABEL {_quoted(key)}={_quoted(value)}" for key, value in sorted(labels.items()))
    return "\n".join(lines) + "\n", LABEL_STAGE if target is not None else None


def image_build(service: str, build: BuildSettings, project_dir: str) -> ImageBuild:
    """Write the derived Dockerfile (and its .dockerignore) and say what to hand the provider."""
    context = os.path.normpath(build.context)
    original = os.path.join(project_dir, context, build.dockerfile)
    labels = oci_labels(build, source_revision(project_dir, build))
    with open(original, encoding="utf-8") as handle:
        text, target = labelled_dockerfile(handle.read(), labels, build.target)
    generated = os.path.join(GENERATED_DIR, f"{service}.Dockerfile")
    _write_if_changed(os.path.join(project_dir, generated), text)
    # Docker reads <Dockerfile>.dockerignore before <context>/.dockerignore: keep the user's choice.
    own_ignore = f"{original}.dockerignore"
    if os.path.isfile(own_ignore):
        with open(own_ignore, encoding="utf-8") as handle:
            _write_if_changed(os.path.join(project_dir, f"{generated}.dockerignore"), handle.read())
    return ImageBuild(
        context=context,
        dockerfile=generated,
        target=target,
        labels=labels,
        dockerfile_text=text,
    )


def _write_if_changed(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        with open(path, encoding="utf-8") as handle:
            if handle.read() == text:
                return
    except FileNotFoundError:
        pass
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def _answers(host: str, timeout: float) -> str | None:
    """None when something accepts a connection at the Docker host URL, else why not."""
    url = urlparse(host)
    try:
        if url.scheme == "unix":
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(url.path)
        elif url.scheme in ("tcp", "http", "https"):
            with socket.create_connection((url.hostname or "localhost", url.port or 2375), timeout=timeout):
                pass
        else:
            return None  # ssh:// and others: the provider's own connection helpers decide
    except OSError as error:
        return error.strerror or str(error)
    return None


def docker_daemon_problem(builds: Mapping[str, BuildSettings], environ: Mapping[str, str]) -> str | None:
    """Why no Docker daemon will build this stack's images, or None when one answers.

    pulumi-docker fails in its Configure, even on preview, with only `failed to connect to any docker
    daemon`; this says the same before any resource is registered, and what to do about it.
    """
    if not builds:
        return None
    configured = environ.get("DOCKER_HOST")
    candidates = [configured] if configured else [h.format(home=environ.get("HOME", "~")) for h in DEFAULT_DOCKER_HOSTS]
    reasons = []
    for host in candidates:
        reason = _answers(host, timeout=2.0)
        if reason is None:
            return None
        reasons.append(f"{host}: {reason}")
    where = f"DOCKER_HOST={configured}" if configured else "DOCKER_HOST is unset, so the default sockets were tried"
    services = ", ".join(f"app.services.{name}.build" for name in sorted(builds))
    return (
        f"this stack builds images ({services}) but no Docker daemon answers ({where}; "
        f"{'; '.join(reasons)}). Start a daemon and point DOCKER_HOST at it, for example "
        '`eval "$(scripts/images/local-registry.sh start)"` (a private dockerd and a registry on 127.0.0.1), '
        "or deploy a pinned image instead of a build"
    )
