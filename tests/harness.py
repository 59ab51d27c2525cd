"""Run __main__.py for a stack under Pulumi mocks and record every registered resource.

The stack's own Pulumi.<stack>.yaml is the config (encrypted values and required-but-absent
external secrets replaced by test values), so the tests see exactly what `pulumi up` would send
the engine: camelCase inputs, resource options, providers, secret markers and stack outputs.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import os
import pickle
import runpy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import resource as pulumi_resource_runtime
from pulumi.runtime import rpc
from pulumi.runtime.proto import source_pb2

from components.config import deep_merge
from scripts.pin_images import file_path, with_value

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "support-platform"
STACKS = ("dev", "staging", "production")

# Test stand-ins for external secrets; distinctive so that a leak is found by a plain search.
TEST_SECRETS = {
    "llmApiKey": "sk-test-llm-0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "alertWebhookUrl": "https://hooks.example.test/services/T0000/B0000/whsecret0f1e2d3c4b5a6978",
    "registryPassword": "regpass-test-0f1e2d3c4b5a6978",
}
REQUIRED_SECRETS = {"staging": ("llmApiKey", "alertWebhookUrl"), "production": ("llmApiKey", "alertWebhookUrl")}
# Pulumi.production.yaml names the api's release tag; a release pins it (`make pin-images`). The tests
# run production as released, with the tag pinned to a stand-in digest: the sha256 of this phrase,
# which no registry serves (nothing here pulls).
STAND_IN_DIGEST = "sha256:" + hashlib.sha256(b"support-platform test stand-in: no registry serves this").hexdigest()
RELEASE_PINS = {"production": {"app.services.api.image": f"ghcr.io/support-platform/api:1.4.0@{STAND_IN_DIGEST}"}}


def stack_text(stack: str, text: str | None = None) -> str:
    """Pulumi.<stack>.yaml as a release deploys it: the release pins applied to `text` (default: the
    working copy of the stack file)."""
    if text is None:
        text = (ROOT / f"Pulumi.{stack}.yaml").read_text()
    for path, image in RELEASE_PINS.get(stack, {}).items():
        text = with_value(text, file_path(path), image)
    return text


def mock_password(name: str) -> str:
    return "pw" + hashlib.sha256(name.encode()).hexdigest()[:30]


@dataclass
class RecordedResource:
    type: str
    name: str
    urn: str
    inputs: dict[str, Any]
    secret_paths: set[str]
    protect: bool
    retain_on_delete: bool
    provider: str | None
    parent: str | None
    custom: bool
    depends_on: list[str] = field(default_factory=list)
    custom_timeouts: dict[str, str] = field(default_factory=dict)
    delete_before_replace: bool = False

    @property
    def kind(self) -> str:
        return self.type.rsplit(":", 1)[-1]

    def get(self, path: str) -> Any:
        """Dotted path into the inputs; list items by index: spec.template.spec.containers.0.name."""
        value: Any = self.inputs
        for part in path.split("."):
            value = value[int(part)] if isinstance(value, list) else value[part]
        return value


@dataclass
class ProgramRun:
    stack: str
    resources: list[RecordedResource]
    outputs: dict[str, Any]
    secret_outputs: set[str]
    error: BaseException | None

    def of_type(self, kind: str) -> list[RecordedResource]:
        return [r for r in self.resources if kind in (r.type, r.kind)]

    def one(self, kind: str, name: str) -> RecordedResource:
        found = [r for r in self.of_type(kind) if r.name == name]
        assert len(found) == 1, f"expected one {kind} named {name}, found {[r.name for r in self.of_type(kind)]}"
        return found[0]

    def k8s(self, kind: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type.startswith("kubernetes:") and r.kind == kind]

    def by_object_name(self, kind: str, object_name: str) -> RecordedResource:
        found = [r for r in self.k8s(kind) if r.inputs.get("metadata", {}).get("name") == object_name]
        assert len(found) == 1, f"expected one {kind} {object_name}"
        return found[0]


_SECRET_SIG = rpc._special_sig_key
_SECRET_VALUE = rpc._special_secret_sig


def _unwrap(value: Any, path: str, secret_paths: set[str]) -> Any:
    """Plain inputs plus the dotted paths of every value the program marked secret."""
    if isinstance(value, Mapping):
        if value.get(_SECRET_SIG) == _SECRET_VALUE:
            secret_paths.add(path)
            return _unwrap(value.get("value"), path, set())
        return {k: _unwrap(v, f"{path}.{k}" if path else k, secret_paths) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v, f"{path}.{i}", secret_paths) for i, v in enumerate(value)]
    return value


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self, previous_outputs: Mapping[str, Any] | None = None) -> None:
        # What the engine's readStackOutputs would return: the stack's last update's outputs.
        self.previous_outputs = dict(previous_outputs or {})

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        state = copy.deepcopy(args.inputs)
        if args.typ == "random:index/randomPassword:RandomPassword":
            state["result"] = mock_password(args.name)
        elif args.typ == "docker:index/image:Image":
            digest = hashlib.sha256(args.name.encode()).hexdigest()
            state["repoDigest"] = f"{str(args.inputs['imageName']).rsplit(':', 1)[0]}@sha256:{digest}"
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        if args.token == "pulumi:pulumi:readStackOutputs":
            return {"name": args.args.get("name"), "outputs": self.previous_outputs, "secretOutputNames": []}, []
        return {}, []


class RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.recorded: list[RecordedResource] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            raw = json_format.MessageToDict(request.object, preserving_proto_field_name=True)
            secret_paths: set[str] = set()
            self.recorded.append(
                RecordedResource(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    inputs=_unwrap(raw, "", secret_paths),
                    secret_paths=secret_paths,
                    protect=bool(request.protect),
                    retain_on_delete=bool(request.retainOnDelete),
                    provider=request.provider or None,
                    parent=request.parent or None,
                    custom=bool(request.custom),
                    depends_on=list(request.dependencies),
                    custom_timeouts={
                        k: v for k in ("create", "update", "delete") if (v := getattr(request.customTimeouts, k))
                    },
                    delete_before_replace=bool(request.deleteBeforeReplace),
                )
            )
        return response


def overlay(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Patch a stack file's value the way a user edits it: nested maps merge, and a null stays a
    null (the program reads it as "drop the built-in value")."""
    return deep_merge(base, patch, drop_nulls=False)


def _scalar_config(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def stack_config(
    stack: str,
    overrides: Mapping[str, Any] | None = None,
    remove: tuple[str, ...] = (),
    secrets: Mapping[str, str] | None = None,
    plaintext: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], list[str]]:
    """The engine's view of Pulumi.<stack>.yaml: project-qualified keys to strings, and the secret keys.

    `overrides` replaces top-level values (`{"app": {...}}` for support-platform:app); `secrets` adds
    values as --secret config; `plaintext` adds values as if set without --secret.
    """
    document = yaml.safe_load(stack_text(stack)) or {}
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in (document.get("config") or {}).items():
        if isinstance(value, Mapping) and set(value) == {"secure"}:
            short = key.split(":", 1)[1]
            config[key] = TEST_SECRETS.get(short, f"test-secret-{short}")
            secret_keys.append(key)
        else:
            config[key] = _scalar_config(value)
    for short in REQUIRED_SECRETS.get(stack, ()):
        full = f"{PROJECT}:{short}"
        if full not in config:
            config[full] = TEST_SECRETS[short]
            secret_keys.append(full)
    for short in remove:
        config.pop(f"{PROJECT}:{short}", None)
        if f"{PROJECT}:{short}" in secret_keys:
            secret_keys.remove(f"{PROJECT}:{short}")
    for short, value in (overrides or {}).items():
        config[f"{PROJECT}:{short}"] = _scalar_config(value)
    for short, value in (secrets or {}).items():
        config[f"{PROJECT}:{short}"] = value
        secret_keys.append(f"{PROJECT}:{short}")
    for short, value in (plaintext or {}).items():
        config[f"{PROJECT}:{short}"] = value
    return config, secret_keys


def raw_stack_value(stack: str, key: str) -> Any:
    document = yaml.safe_load(stack_text(stack)) or {}
    return copy.deepcopy((document.get("config") or {}).get(f"{PROJECT}:{key}"))


def run_program(
    stack: str,
    config: dict[str, str] | None = None,
    secret_keys: list[str] | None = None,
    preview: bool = False,
    previous_outputs: Mapping[str, Any] | None = None,
) -> ProgramRun:
    """Run __main__.py for `stack` under mocks; an error is returned, not raised, with what was registered.

    One cache for the whole session: the same (stack, config, secret keys, preview, previous
    outputs, environment) runs the program once, whichever module asks; a test that watches the
    program's log or its calls uses `execute_program`. Each caller gets its own copy, so a test
    that mutates what it got cannot leak into another.
    """
    if config is None:
        config, secret_keys = stack_config(stack)
    # The environment is an input too (KUBECONFIG, DOCKER_HOST: tests set them); pytest's own is not.
    environment = sorted((k, v) for k, v in os.environ.items() if not k.startswith("PYTEST_"))
    key = json.dumps(
        [stack, config, sorted(secret_keys or []), preview, previous_outputs, environment],
        sort_keys=True,
        default=repr,
    )
    run = _RUNS.get(key)
    if run is None:
        run = execute_program(stack, config, secret_keys, preview, previous_outputs)
        _RUNS[key] = run
    return _private_copy(run)


_RUNS: dict[str, ProgramRun] = {}


def _no_stack_trace() -> source_pb2.StackTrace:
    return source_pb2.StackTrace()


def _private_copy(run: ProgramRun) -> ProgramRun:
    try:
        copied: ProgramRun = pickle.loads(pickle.dumps(run))  # noqa: S301 - our own objects, this process
    except (pickle.PicklingError, TypeError, AttributeError):
        copied = copy.deepcopy(run)
    return copied


def execute_program(
    stack: str,
    config: dict[str, str] | None = None,
    secret_keys: list[str] | None = None,
    preview: bool = False,
    previous_outputs: Mapping[str, Any] | None = None,
    mocks: RecordingMocks | None = None,
) -> ProgramRun:
    """Run the program now, uncached; `mocks` replaces the recording mocks (to watch its calls)."""
    if config is None:
        config, secret_keys = stack_config(stack)
    mocks = mocks if mocks is not None else RecordingMocks(previous_outputs)
    monitor = RecordingMonitor(mocks)
    # The SDK walks the Python stack at every registration to tell the engine where the resource
    # was declared; nothing here reads it, and it is a sixth of a run's time.
    pulumi_resource_runtime._get_stack_trace = _no_stack_trace
    # A fresh root stack per run, or one run's exports would show up in the next.
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor)
    pulumi.runtime.set_all_config(config, secret_keys or [])
    outputs: dict[str, Any] = {}
    secret_outputs: set[str] = set()

    @pulumi.runtime.test
    def body() -> pulumi.Output[Any]:
        runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")
        root = pulumi.runtime.get_root_resource()
        exported: dict[str, Any] = dict(getattr(root, "outputs", {}) or {})

        async def resolve() -> None:
            for name, value in exported.items():
                out = pulumi.Output.from_input(value)
                outputs[name] = await out.future()
                if await out.is_secret():
                    secret_outputs.add(name)

        return pulumi.Output.from_input(asyncio.ensure_future(resolve()))

    error: BaseException | None = None
    try:
        body()
    except Exception as exc:
        error = exc
    return ProgramRun(
        stack=stack,
        resources=list(monitor.recorded),
        outputs=outputs,
        secret_outputs=secret_outputs,
        error=error,
    )


def walk_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from walk_strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk_strings(v, f"{path}.{i}")
    elif isinstance(value, str):
        yield path, value
