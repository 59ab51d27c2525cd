"""Tests of the CrossGuard pack in `policies/`.

The pack is a standalone Pulumi policy project whose entry point (`policies/__main__.py`) blocks,
so its rules live in the `support_policies` package inside `policies/`. The CLI runs the pack with
`policies/` as the working directory; the tests put the same directory on `sys.path`, once, here.
"""

from __future__ import annotations

import sys
from pathlib import Path

POLICIES_DIR = Path(__file__).resolve().parents[2] / "policies"

if str(POLICIES_DIR) not in sys.path:
    sys.path.insert(0, str(POLICIES_DIR))
