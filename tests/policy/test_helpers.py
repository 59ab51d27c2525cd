"""The shared helpers: pod template locations, effective security context, selectors,
quantities, secret heuristics (with generated inputs)."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from support_policies import k8s, pod_specs
from support_policies.secret_detection import (
    DESCRIPTOR_WORDS,
    SECRET_SUFFIXES,
    SECRET_WORDS,
    find_secret_values,
    is_placeholder,
    is_secret_name,
    name_words,
)

from .fixtures import (
    CONTAINER_LISTS,
    POD_SPEC_PATHS,
    WORKLOAD_KINDS,
    container,
    engine_view,
    pod_metadata_path,
    pod_spec,
    with_container,
    workload,
)

# --- pod templates --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", WORKLOAD_KINDS)
def test_every_kind_exposes_its_pod_template_and_all_container_lists(kind: str) -> None:
    spec = pod_spec(kind)
    spec["initContainers"] = [container("init", "initContainers")]
    spec["ephemeralContainers"] = [container("debug", "ephemeralContainers")]
    resource_type, props = workload(kind, spec)
    pod = pod_specs.pod_template(resource_type, engine_view(props))
    assert pod is not None
    assert (pod.kind, pod.path, pod.metadata_path) == (kind, POD_SPEC_PATHS[kind], pod_metadata_path(kind))
    assert [(c.list_name, c.name) for c in pod_specs.containers(pod)] == [
        ("containers", "api"),
        ("initContainers", "init"),
        ("ephemeralContainers", "debug"),
    ]
    assert pod.long_running == (kind not in ("Job", "CronJob"))


@pytest.mark.parametrize(
    "resource_type",
    ["kubernetes:core/v1:Service", "kubernetes:apps/v1:DeploymentPatch", "kubernetes:helm.sh/v4:Chart"],
)
def test_non_workloads_have_no_pod_template(resource_type: str) -> None:
    assert pod_specs.pod_template(resource_type, engine_view({"spec": {"template": {"spec": {}}}})) is None


@pytest.mark.parametrize("list_name", CONTAINER_LISTS)
def test_effective_security_prefers_the_container_then_the_pod(list_name: str) -> None:
    entry = container("extra", list_name)
    entry["securityContext"] = {"runAsUser": 20000}
    resource_type, props = with_container("Deployment", list_name, entry)
    pod = pod_specs.pod_template(resource_type, engine_view(props))
    assert pod is not None
    extra = next(c for c in pod_specs.containers(pod) if c.name == "extra")
    own = pod_specs.effective_security(extra, "runAsUser")
    assert (own.value, own.from_pod) == (20000, False)
    inherited = pod_specs.effective_security(extra, "seccompProfile")
    assert inherited.path == "spec.template.spec.securityContext.seccompProfile" and inherited.from_pod
    # readOnlyRootFilesystem has no pod-level field, so nothing is inherited.
    container_only = pod_specs.effective_security(extra, "readOnlyRootFilesystem")
    assert container_only.value is None
    assert container_only.path == f"spec.template.spec.{list_name}[extra].securityContext.readOnlyRootFilesystem"


def test_engine_numbers_are_floats_and_props_read_only() -> None:
    _, props = workload("Deployment", replicas=3)
    view = engine_view(props)
    assert view["spec"]["replicas"] == 3.0 and isinstance(view["spec"]["replicas"], float)
    assert not isinstance(view, dict) and not isinstance(view["spec"]["template"]["spec"]["containers"], list)


# --- k8s helpers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "kind"),
    [
        ("kubernetes:apps/v1:Deployment", "Deployment"),
        ("kubernetes:core/v1:Pod", "Pod"),
        ("kubernetes:gateway.networking.k8s.io/v1:HTTPRoute", "HTTPRoute"),
        ("kubernetes:apps/v1:DeploymentPatch", None),
        ("kubernetes:core/v1:PodList", None),
        ("kubernetes:yaml/v2:ConfigGroup", None),
        ("kubernetes:yaml:ConfigFile", None),
        ("kubernetes:helm.sh/v3:Release", None),
        ("pulumi:providers:kubernetes", None),
        ("support:app:Workload", None),
    ],
)
def test_k8s_kind(token: str, kind: str | None) -> None:
    assert k8s.k8s_kind(token) == kind


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ({}, True),
        ({"matchLabels": {"app": "api"}}, True),
        ({"matchLabels": {"app": "web"}}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["backend"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["backend"]}]}, False),
        ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "canary", "operator": "DoesNotExist"}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "Gt", "values": ["1"]}]}, False),
        (None, False),
    ],
)
def test_selector_matches(selector: object, matches: bool) -> None:
    assert k8s.selector_matches(selector, {"app": "api", "tier": "backend"}) is matches


@pytest.mark.parametrize(
    ("quantity", "value"),
    [
        ("250m", 0.25),
        ("1", 1.0),
        (2, 2.0),
        ("1Gi", 2.0**30),
        ("512Mi", 512 * 2.0**20),
        ("1e3", 1000.0),
        ("1.5k", 1500.0),
        ("x", None),
        (True, None),
    ],
)
def test_parse_quantity(quantity: object, value: float | None) -> None:
    assert k8s.parse_quantity(quantity) == value


def test_urn_type_and_name() -> None:
    urn = "urn:pulumi:dev::support-platform::support:app:Workload$kubernetes:apps/v1:Deployment::api"
    assert k8s.urn_type_and_name(urn) == ("kubernetes:apps/v1:Deployment", "api")


# --- secret heuristics ----------------------------------------------------------------------

_word = st.text(alphabet=string.ascii_lowercase, min_size=2, max_size=8).filter(
    lambda w: (
        w not in SECRET_WORDS
        and w not in DESCRIPTOR_WORDS
        and not w.endswith(SECRET_SUFFIXES)
        # one word of every credential pair, so that generated names never form one
        and w not in {"api", "private", "access", "client", "signing", "encryption", "master", "key", "pat", "str"}
        and w not in {"string", "json"}
    )
)


@given(prefix=st.lists(_word, max_size=3), secret=st.sampled_from(sorted(SECRET_WORDS - {"pwd"})), upper=st.booleans())
def test_names_ending_in_a_secret_word_are_secret(prefix: list[str], secret: str, upper: bool) -> None:
    name = "_".join([*prefix, secret])
    assert is_secret_name(name.upper() if upper else name)


@given(
    prefix=st.lists(_word, max_size=2),
    secret=st.sampled_from(sorted(SECRET_WORDS)),
    descriptor=st.sampled_from(sorted(DESCRIPTOR_WORDS)),
)
def test_names_describing_a_secret_are_not_secret(prefix: list[str], secret: str, descriptor: str) -> None:
    assert not is_secret_name("_".join([*prefix, secret, *descriptor.split("_")]).upper())


@given(words=st.lists(_word, min_size=1, max_size=4))
def test_ordinary_names_are_not_secret(words: list[str]) -> None:
    assert not is_secret_name("_".join(words))


def test_name_words_split_camel_and_separators() -> None:
    assert name_words("dbPassword") == ["db", "password"]
    assert name_words("OPENAI_API_KEY") == ["openai", "api", "key"]
    assert name_words("jwt.secret-key") == ["jwt", "secret", "key"]
    assert name_words("HTTPServerToken") == ["http", "server", "token"]


_userinfo = st.text(alphabet=string.ascii_letters + string.digits + "-_.~!", min_size=1, max_size=16)


@given(user=_userinfo, password=_userinfo, host=st.sampled_from(["db", "postgres.data.svc", "10.0.0.5:5432"]))
def test_url_credentials_are_found_and_masked(user: str, password: str, host: str) -> None:
    if is_placeholder(password):
        return
    hits = list(find_secret_values(f"postgresql://{user}:{password}@{host}/app"))
    assert [(h.kind, h.redacted) for h in hits][:1] == [
        ("a URL with an embedded password", f"postgresql://{user}:***@")
    ]


@given(host=st.sampled_from(["db", "postgres.data.svc:5432"]), user=_userinfo)
def test_urls_without_password_are_fine(host: str, user: str) -> None:
    assert list(find_secret_values(f"postgresql://{host}/app")) == []
    assert list(find_secret_values(f"postgresql://{user}@{host}/app")) == []


@pytest.mark.parametrize(
    "value", ["${DB_PASSWORD}", "$(TOKEN)", "{{ .Values.password }}", "<set me>", "", "null", "***"]
)
def test_placeholders(value: str) -> None:
    assert is_placeholder(value)
    assert not is_placeholder("hunter2")
