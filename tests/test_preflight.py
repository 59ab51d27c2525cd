"""Preflight (components/preflight.py): what each stack needs from its cluster, decided from the settings,
asked of a fake API server on 127.0.0.1 through a kubeconfig, and the program refusing before it
registers anything. The real control plane's answer is in tests/e2e/test_deploy_cluster.py."""

from __future__ import annotations

import json
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import preflight
from components.cluster_reader import ClusterUnreachableError, kubeconfig_paths, reader_for
from components.config import Settings, load_settings
from tests.harness import ROOT, STACKS, execute_program, overlay, raw_stack_value, run_program, stack_config

SCRIPT_PINS = (ROOT / "scripts" / "crds.sh").read_text()


def settings_of(stack: str, **overrides: Any) -> Settings:
    """The stack's validated settings, as the program reads them from the (mocked) engine's config."""
    config, _ = stack_config(stack, overrides=overrides or None)
    secrets = ("llmApiKey", "alertWebhookUrl")
    structured = {
        key.split(":", 1)[1]: json.loads(value) if value[:1] in "{[" else value
        for key, value in config.items()
        if key.split(":", 1)[1] not in secrets
    }
    return load_settings(stack, structured, [], dict.fromkeys(secrets, True))


VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "staging": ("staging", {}),
    "production": ("production", {}),
    "operator": ("staging", {"monitoring": {"mode": "operator", "operator": {"selectorLabels": {"release": "kps"}}}}),
    "ingress": ("staging", {"edge": overlay(raw_stack_value("staging", "edge"), {"mode": "ingress"})}),
    "snapshots": (
        "staging",
        {
            "data": {
                "chroma": {
                    "snapshots": {"volumeSnapshotClass": "csi-snapshots"},
                    "storage": {"size": "10Gi", "storageClass": "fast-ssd"},
                }
            }
        },
    ),
    "no-rate-limit": (
        "production",
        {"edge": overlay(raw_stack_value("production", "edge"), {"rateLimit": {"enabled": False}})},
    ),
}


def whats(stack: str, **overrides: Any) -> list[str]:
    return [need.what for need in preflight.needs(settings_of(stack, **overrides))]


def test_staging_needs_the_gateway_cert_manager_and_envoy_crds_its_class_and_a_default_storage_class() -> None:
    assert whats("staging") == [
        "CRD gateways.gateway.networking.k8s.io (Gateway, gateway.networking.k8s.io/v1)",
        "CRD httproutes.gateway.networking.k8s.io (HTTPRoute, gateway.networking.k8s.io/v1)",
        "CRD gatewayclasses.gateway.networking.k8s.io (GatewayClass, gateway.networking.k8s.io/v1)",
        "GatewayClass eg",
        "CRD backendtrafficpolicies.gateway.envoyproxy.io (BackendTrafficPolicy, gateway.envoyproxy.io/v1alpha1)",
        "CRD certificates.cert-manager.io (Certificate, cert-manager.io/v1)",
        # Staging creates its ACME ClusterIssuer: the CRD is needed, the object is not.
        "CRD clusterissuers.cert-manager.io (ClusterIssuer, cert-manager.io/v1)",
        "a default StorageClass",
    ]


def test_production_needs_the_clusterissuer_it_names_and_does_not_create() -> None:
    needs = {n.what: n for n in preflight.needs(settings_of("production"))}
    issuer = needs["ClusterIssuer letsencrypt-production"]
    assert issuer.path == "/apis/cert-manager.io/v1/clusterissuers/letsencrypt-production"
    assert "edge.tls.createIssuer" in issuer.fix and not issuer.optional


def test_variants_add_and_drop_what_they_emit() -> None:
    operator = whats(*VARIANTS["operator"][:1], **VARIANTS["operator"][1])
    assert "CRD servicemonitors.monitoring.coreos.com (ServiceMonitor, monitoring.coreos.com/v1)" in operator
    assert "CRD alertmanagerconfigs.monitoring.coreos.com (AlertmanagerConfig, monitoring.coreos.com/v1alpha1)" in (
        operator
    )
    ingress = whats("staging", **VARIANTS["ingress"][1])
    assert "IngressClass nginx" in ingress and not any("gateway.networking" in w for w in ingress)
    snapshots = {n.what: n for n in preflight.needs(settings_of("staging", **VARIANTS["snapshots"][1]))}
    assert "VolumeSnapshotClass csi-snapshots" in snapshots
    assert "data.chroma.storage.storageClass" in snapshots["StorageClass fast-ssd"].why
    assert "data.chroma.storage.storageClass" not in snapshots["a default StorageClass"].why
    no_limit = whats("production", **VARIANTS["no-rate-limit"][1])
    assert not any("backendtrafficpolicies" in w for w in no_limit)


def custom_resources(run: Any) -> set[tuple[str, str]]:
    return {(r.inputs["apiVersion"], r.inputs["kind"]) for r in run.resources if r.type.startswith("kubernetes:")
            and r.type.split(":")[1].startswith(("apiextensions", "gateway", "cert", "monitoring"))
            and "apiVersion" in r.inputs}  # fmt: skip


def storage_classes(run: Any) -> set[str | None]:
    found: set[str | None] = set()
    for r in run.resources:
        if r.kind == "PersistentVolumeClaim":
            found.add(r.inputs["spec"].get("storageClassName"))
        for template in (r.inputs.get("spec") or {}).get("volumeClaimTemplates") or []:
            found.add(template["spec"].get("storageClassName"))
    return found


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_custom_resource_and_claim_the_program_registers_is_covered(variant: str) -> None:
    stack, overrides = VARIANTS[variant]
    config, secret_keys = stack_config(stack, overrides=overrides or None)
    run = run_program(stack, config, secret_keys)
    assert run.error is None, run.error
    needs = preflight.needs(settings_of(stack, **overrides))
    covered = {n.what.split(" (", 1)[1].rstrip(")") for n in needs if n.kind == "crd"}
    emitted = {f"{kind}, {api}" for api, kind in custom_resources(run)}
    assert emitted and emitted <= covered, emitted - covered
    classes = storage_classes(run)
    assert classes, "no claim registered"
    for storage_class in classes:
        wanted = "a default StorageClass" if storage_class is None else f"StorageClass {storage_class}"
        assert wanted in {n.what for n in needs}, storage_class


def test_the_crd_sources_are_the_versions_scripts_crds_sh_installs() -> None:
    for module_version in ("sigs.k8s.io/gateway-api@v1.6.3", "github.com/envoyproxy/gateway@v1.9.1",
                           "github.com/cert-manager/cert-manager@v1.21.2",
                           "github.com/prometheus-operator/prometheus-operator@v0.85.0",
                           "github.com/kubernetes-csi/external-snapshotter/client/v8@v8.7.0"):  # fmt: skip
        assert module_version in SCRIPT_PINS, module_version
        module, version = module_version.split("@")
        short = module.removesuffix("/client/v8")
        assert any(short in source and version in source for source in preflight.SOURCES.values()), module_version


# --- asking a cluster ------------------------------------------------------------------------------


def crd_object(name: str, versions: dict[str, bool], established: bool = True) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"versions": [{"name": v, "served": served} for v, served in versions.items()]},
        "status": {"conditions": [{"type": "Established", "status": "True" if established else "False"}]},
    }


def complete_cluster(needs: list[preflight.Need]) -> dict[str, tuple[int, Any]]:
    answers: dict[str, tuple[int, Any]] = {"/version": (200, {"major": "1", "minor": "33", "gitVersion": "v1.33.2"})}
    for need in needs:
        if need.kind == "crd":
            answers[need.path] = (200, crd_object(need.path.rsplit("/", 1)[1], {need.version: True}))
        elif need.kind == "object":
            answers[need.path] = (200, {"metadata": {"name": need.path.rsplit("/", 1)[1]}})
        else:
            default = {"storageclass.kubernetes.io/is-default-class": "true"}
            answers[need.path] = (200, {"items": [{"metadata": {"name": "standard", "annotations": default}}]})
    return answers


def getter(answers: dict[str, tuple[int, Any]]) -> Any:
    return lambda path: answers.get(path, (404, {"kind": "Status", "code": 404}))


def test_a_bare_cluster_is_refused_with_every_missing_prerequisite_and_its_fix() -> None:
    needs = preflight.needs(settings_of("production"))
    problems, notes = preflight.missing(needs, getter({"/version": (200, {"major": "1", "minor": "33"})}))
    assert notes == []
    assert len(problems) == len(needs)
    assert problems[0].startswith("CRD gateways.gateway.networking.k8s.io (Gateway, gateway.networking.k8s.io/v1) ")
    assert "install the Gateway API standard CRDs (sigs.k8s.io/gateway-api v1.6.3" in problems[0]
    assert any(p.startswith("ClusterIssuer letsencrypt-production (") for p in problems)
    assert any(
        p.startswith("a default StorageClass (the claims of data.postgres.storage.storageClass") for p in problems
    )
    message = preflight.report("production", "support-production", problems)
    assert message.startswith(f"stack 'production': the cluster of context 'support-production' lacks {len(needs)}")
    assert "nothing was deployed" in message and "scripts/crds.sh" in message


def test_a_complete_cluster_passes_and_each_gap_is_found_alone() -> None:
    needs = preflight.needs(settings_of("production"))
    answers = complete_cluster(needs)
    assert preflight.missing(needs, getter(answers)) == ([], [])
    btp = next(n for n in needs if "backendtrafficpolicies" in n.path)
    served_elsewhere = {**answers, btp.path: (200, crd_object("btp", {"v1alpha1": False, "v1": True}))}
    (problem,), _ = preflight.missing(needs, getter(served_elsewhere))
    assert "is installed but does not serve that version" in problem and "edge.rateLimit.enabled: false" in problem
    no_default = {**answers, "/apis/storage.k8s.io/v1/storageclasses": (200, {"items": [{"metadata": {"name": "x"}}]})}
    (problem,), _ = preflight.missing(needs, getter(no_default))
    assert problem.startswith("a default StorageClass")
    forbidden = {**answers, "/apis/cert-manager.io/v1/clusterissuers/letsencrypt-production": (403, None)}
    unreadable = "ClusterIssuer letsencrypt-production: not checked, the deploying identity may not read it (403)"
    assert preflight.missing(needs, getter(forbidden)) == ([], [unreadable])
    old = {**answers, "/version": (200, {"major": "1", "minor": "26+", "gitVersion": "v1.26.9"})}
    (problem,), _ = preflight.missing(needs, getter(old))
    assert problem.startswith("Kubernetes v1.26.9: the program needs 1.27 or later")


# --- through a kubeconfig ---------------------------------------------------------------------------


class FakeApiServer:
    def __init__(self, answers: dict[str, tuple[int, Any]], token: str | None = None) -> None:
        self.answers, self.token, self.seen = answers, token, []  # type: ignore[var-annotated]

    def handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                api.seen.append((self.path, self.headers.get("Authorization")))
                if api.token and self.headers.get("Authorization") != f"Bearer {api.token}":
                    status, body = 401, {"kind": "Status", "code": 401}
                else:
                    status, body = api.answers.get(self.path, (404, {"kind": "Status", "code": 404}))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


@pytest.fixture
def api_server() -> Iterator[tuple[FakeApiServer, str]]:
    fake = FakeApiServer({})
    server = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def kubeconfig(path: Path, server: str, user: dict[str, Any], context: str = "support-staging") -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "other",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
    }))  # fmt: skip
    return path


def test_an_exec_plugin_token_reaches_the_api_server(api_server: tuple[FakeApiServer, str], tmp_path: Path) -> None:
    fake, url = api_server
    fake.token = "exec-token-0f1e"
    fake.answers["/version"] = (200, {"major": "1", "minor": "33"})
    plugin = tmp_path / "credential-plugin"
    plugin.write_text('#!/bin/sh\necho \'{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",'
                      '"status":{"token":"exec-token-0f1e"}}\'\n')  # fmt: skip
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    config = kubeconfig(tmp_path / "config", url, {"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                                                            "command": "./credential-plugin"}})  # fmt: skip
    reader = reader_for(kubeconfig_paths(None, {"KUBECONFIG": f"{tmp_path / 'absent'}:{config}"}), "support-staging")
    assert reader.get("/version") == (200, {"major": "1", "minor": "33"})
    assert fake.seen == [("/version", "Bearer exec-token-0f1e")]


def test_what_cannot_be_asked_is_named(tmp_path: Path) -> None:
    with pytest.raises(ClusterUnreachableError, match="no kubeconfig at"):
        reader_for([tmp_path / "none"], "x")
    config = kubeconfig(tmp_path / "config", "http://127.0.0.1:9", {"token": "t"})
    with pytest.raises(ClusterUnreachableError, match="the kubeconfig has no context 'missing'"):
        reader_for([config], "missing")
    with pytest.raises(ClusterUnreachableError, match="auth-provider plugin"):
        legacy = kubeconfig(tmp_path / "gcp", "https://x.invalid", {"auth-provider": {"name": "gcp"}})
        reader_for([legacy], "support-staging")
    reader = reader_for([config], "support-staging")
    reader.timeout = 3
    with pytest.raises(ClusterUnreachableError, match=r"http://127\.0\.0\.1:9 does not answer"):
        reader.get("/version")


def program_against(monkeypatch: pytest.MonkeyPatch, config_path: Path, stack: str = "staging") -> Any:
    monkeypatch.setenv("KUBECONFIG", str(config_path))
    return execute_program(stack)  # uncached: what the fake API server answers is an input too


def test_the_program_refuses_a_bare_cluster_before_registering_anything(
    api_server: tuple[FakeApiServer, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, url = api_server
    fake.answers["/version"] = (200, {"major": "1", "minor": "37", "gitVersion": "v1.37.2"})
    run = program_against(monkeypatch, kubeconfig(tmp_path / "config", url, {"token": "t"}))
    assert run.error is not None
    message = str(run.error)
    assert "stack 'staging': the cluster of context 'support-staging' lacks 8 prerequisite(s)" in message
    assert "CRD httproutes.gateway.networking.k8s.io" in message and "GatewayClass eg" in message
    assert run.resources == [], "nothing may be registered before the preflight passes"
    # Everything in place: the same program registers the platform.
    fake.answers.update(complete_cluster(preflight.needs(settings_of("staging"))))
    run = program_against(monkeypatch, tmp_path / "config")
    assert run.error is None, run.error
    assert run.resources


def test_without_a_reachable_cluster_the_preview_says_so_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    run = program_against(monkeypatch, kubeconfig(tmp_path / "config", "http://127.0.0.1:9", {"token": "t"}))
    assert run.error is None, run.error
    assert "preflight skipped: no cluster to ask for context 'support-staging'" in caplog.text
    assert "are not checked (an offline preview)" in caplog.text


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_file_runs_without_a_cluster(stack: str) -> None:
    # tests/conftest.py points KUBECONFIG at nothing: cluster stacks skip, dev has no cluster at all.
    assert run_program(stack).error is None
