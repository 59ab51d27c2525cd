"""`policies/__main__.py` for real: start it as the CLI would, talk to it over gRPC.

The PolicyPack constructor starts the analyzer server, prints its port and blocks, so the pack is
run in a child process (never imported) and stopped by its pid when the test ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime import proto
from pulumi.runtime.proto import analyzer_pb2_grpc

from support_policies import PACK_NAME, all_policies

from . import POLICIES_DIR
from .fixtures import EXPLICIT_PROVIDER_URN, with_container, workload
from .fixtures import container as make_container
from .pack_config import load_stack_config

# Starts real processes (servers, the analyzer): `make integration`, not the fast loop.
pytestmark = pytest.mark.integration

START_TIMEOUT_SECONDS = 60


@pytest.fixture(scope="module")
def analyzer() -> Iterator[Any]:
    env = {**os.environ, "PYTHONPATH": ""}
    process = subprocess.Popen(
        [sys.executable, "-u", "__main__.py"],
        cwd=POLICIES_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        if not port.isdigit():
            process.kill()
            _, err = process.communicate(timeout=START_TIMEOUT_SECONDS)
            pytest.fail(f"the pack did not start: {port!r}\n{err}")
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=START_TIMEOUT_SECONDS)
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        process.kill()
        process.communicate(timeout=START_TIMEOUT_SECONDS)


def test_the_pack_describes_every_policy(analyzer: Any) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == PACK_NAME and info.supportsConfig
    assert [p.name for p in info.policies] == [p.name for p in all_policies()]
    for policy in info.policies:
        assert "exemptions" in policy.configSchema.properties, policy.name


def test_the_pack_analyzes_with_the_production_config(analyzer: Any) -> None:
    config = load_stack_config("production", all_policies())
    levels = {"mandatory": proto.MANDATORY, "advisory": proto.ADVISORY, "disabled": proto.DISABLED}
    request = proto.ConfigureAnalyzerRequest(
        policyConfig={
            name: proto.PolicyConfig(enforcementLevel=levels[entry.level.value], properties=_struct(entry.properties))
            for name, entry in config.items()
        }
    )
    analyzer.Configure(request)

    resource_type, props = workload("Deployment")
    clean = _analyze(analyzer, resource_type, props)
    assert list(clean.diagnostics) == []

    resource_type, props = with_container(
        "Deployment", "containers", make_container("extra", image="registry.example.com/support/api:1.4.2")
    )
    diagnostics = list(_analyze(analyzer, resource_type, props).diagnostics)
    assert [(d.policyName, d.enforcementLevel) for d in diagnostics] == [("image-tag-pinned", proto.MANDATORY)]
    assert "spec.template.spec.containers[extra].image" in diagnostics[0].message


def _struct(values: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


def _analyze(analyzer: Any, resource_type: str, props: dict[str, Any]) -> Any:
    request = proto.AnalyzeRequest(
        type=resource_type,
        properties=_struct(props),
        urn=f"urn:pulumi:production::support-platform::{resource_type}::api",
        name="api",
        options=proto.AnalyzerResourceOptions(),
        provider=proto.AnalyzerProviderResource(
            type="pulumi:providers:kubernetes", urn=EXPLICIT_PROVIDER_URN, name="k8s-provider"
        ),
    )
    return analyzer.Analyze(request)
