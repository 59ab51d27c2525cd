"""Decode each resource once per request, not once per policy.

pulumi-policy 1.21's analyzer turns a resource's protobuf properties into Python values inside its
policy loop: for every resource policy on every `Analyze`, and for every stack policy over every
resource on `AnalyzeStack`. With forty policies that decoding is most of the pack's time (profiled:
over 70 % of a preview's analysis), and every policy gets an identical read-only view anyway.

`install()` swaps the three decoding names the analyzer module looks up for versions that remember
their last results by the identity of their input. The cache holds its inputs, so an identity cannot
be reused while its entry lives; entries are evicted oldest first. What a policy sees is unchanged:
the same read-only proxies, the same unknown-value handling, the same names, enforcement levels and
messages. Pinned to the analyzer's code: `test_shared_decoding` fails if the SDK stops calling these
names, so an upgrade cannot silently lose the speed-up or the equivalence.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pulumi_policy.policy as analyzer
from google.protobuf import json_format as _json_format

# Roughly a few stacks' worth of resources: AnalyzeStack passes every resource at once.
_CAPACITY = 4096


class _IdentityCache:
    """Results keyed by the identity of the (kept-alive) first argument and the other arguments."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self._function = function
        self._entries: OrderedDict[tuple[Any, ...], tuple[Any, Any]] = OrderedDict()

    def __call__(self, value: Any, *args: Any) -> Any:
        key = (id(value), *args)
        hit = self._entries.get(key)
        if hit is not None and hit[0] is value:
            return hit[1]
        result = self._function(value, *args)
        self._entries[key] = (value, result)
        if len(self._entries) > _CAPACITY:
            self._entries.popitem(last=False)
        return result


class _JsonFormat(ModuleType):
    """`google.protobuf.json_format` as the analyzer module sees it, with MessageToDict remembered."""

    def __init__(self) -> None:
        super().__init__("json_format")
        self.MessageToDict = _IdentityCache(_json_format.MessageToDict)

    def __getattr__(self, name: str) -> Any:
        return getattr(_json_format, name)


# The analyzer module's own decoding names, kept so that `uninstall()` can put them back.
_NAMES = ("json_format", "deserialize_properties", "unknown_checking_proxy")
_ORIGINALS: dict[str, Any] = {name: getattr(analyzer, name) for name in _NAMES}


def install() -> None:
    """Idempotent: importing the pack calls it (support_policies/__init__.py)."""
    if isinstance(getattr(analyzer, "json_format"), _JsonFormat):  # noqa: B009 - checked as an attribute
        return
    setattr(analyzer, "json_format", _JsonFormat())  # noqa: B010 - replacing a module global
    setattr(analyzer, "deserialize_properties", _IdentityCache(_ORIGINALS["deserialize_properties"]))  # noqa: B010
    setattr(analyzer, "unknown_checking_proxy", _IdentityCache(_ORIGINALS["unknown_checking_proxy"]))  # noqa: B010


def uninstall() -> None:
    """The SDK's own per-policy decoding again (for the tests that compare the two)."""
    for name, original in _ORIGINALS.items():
        setattr(analyzer, name, original)
