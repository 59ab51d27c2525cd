"""Settings of an image build: what pulumi-docker builds and pushes for a service instead of a pinned image."""

from __future__ import annotations

import os
import re
from typing import Annotated

from pydantic import ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from components.config.base import _IMAGE, _SECRET_NAME, _URL_WITH_CREDENTIALS, _check, _cross_field, _Strict

_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_BUILD_ARG = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_STAGE = re.compile(r"^[a-z][a-z0-9_.-]*$")
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/+-]{0,127}$")
_SOURCE_URL = re.compile(r"^https?://[^\s\"'$\\]+$")
_PLATFORM = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$")


class BuildSettings(_Strict):
    """Build the image with pulumi-docker and push it; the pushed digest goes into the Deployment."""

    context: str
    """Build context directory, relative to the project; it must exist and must not contain the project."""
    dockerfile: str = "Dockerfile"
    """Dockerfile, relative to the context; it must exist."""
    repository: str
    """Repository to push to, without tag (registry host first)."""
    tag: Annotated[str, _check(_TAG, "image tag", "1.5.0")]
    """Tag to push; the deployed reference is the pushed digest. Also the image's version label."""
    platform: Annotated[str, _check(_PLATFORM, "platform", "linux/amd64")] = "linux/amd64"
    """Target platform of the build."""
    target: Annotated[str, _check(_STAGE, "build stage name", "runtime")] | None = None
    """Stage of a multi-stage Dockerfile to build; default: the last one."""
    args: dict[Annotated[str, _check(_BUILD_ARG, "build argument name", "PYTHON_VERSION")], str] = {}
    """Build arguments (ARG); never secrets: their values are readable in the image's history."""
    revision: Annotated[str, _check(_REVISION, "source revision", "4f53cda")] | None = None
    """org.opencontainers.image.revision; default: the last git commit that touched the context (docs/images.md)."""
    source: Annotated[str, _check(_SOURCE_URL, "source URL", "https://github.com/acme/support-api")] | None = None
    """org.opencontainers.image.source: URL of the source repository."""
    registry_username: str | None = None
    """Registry user; its password is the secret config key registryPassword."""

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        match = _IMAGE.match(value)
        if not match or match.group("tag") or "@" in value:
            raise PydanticCustomError(
                "format",
                "'{value}' is not a repository without tag; example: registry.example.com/support/api",
                {"value": value},
            )
        return value

    @field_validator("args")
    @classmethod
    def _no_secret_args(cls, args: dict[str, str]) -> dict[str, str]:
        for name, value in args.items():
            if _SECRET_NAME.search(name) or _URL_WITH_CREDENTIALS.search(value):
                raise PydanticCustomError(
                    "secret_in_env",
                    "args.{name} looks like a secret; build arguments are stored in the image's history and in "
                    "plaintext stack config. Registry credentials come from `pulumi config set --secret "
                    "registryPassword`; other build secrets do not belong in a build argument",
                    {"name": name},
                )
        return args

    @model_validator(mode="after")
    def _paths_exist(self, info: ValidationInfo) -> BuildSettings:
        # Checked here, not by the provider, so a wrong path stops the program before any resource.
        project_dir = (info.context or {}).get("project_dir")
        for field_name, value in (("context", self.context), ("dockerfile", self.dockerfile)):
            if os.path.isabs(value):
                raise _cross_field(
                    field_name,
                    "'{value}' is absolute; give it relative to the {base} so the stack works in every checkout",
                    value=value,
                    base="project" if field_name == "context" else "context",
                )
        if project_dir is None:
            return self
        context = os.path.normpath(os.path.join(project_dir, self.context))
        if not os.path.isdir(context):
            raise _cross_field(
                "context",
                "build context '{value}' is not a directory (resolved against the project: {resolved})",
                value=self.context,
                resolved=os.path.relpath(context, project_dir),
            )
        project = os.path.realpath(project_dir)
        if os.path.commonpath([project, os.path.realpath(context)]) == os.path.realpath(context):
            raise _cross_field(
                "context",
                "build context '{value}' contains the project, whose state and rendered manifests change on every "
                "up (so every up would rebuild); put the app's sources in a directory of their own",
                value=self.context,
            )
        dockerfile = os.path.normpath(os.path.join(context, self.dockerfile))
        if not os.path.isfile(dockerfile):
            raise _cross_field(
                "dockerfile",
                "Dockerfile '{value}' not found in the build context (looked for {resolved}, relative to the project)",
                value=self.dockerfile,
                resolved=os.path.relpath(dockerfile, project_dir),
            )
        return self
