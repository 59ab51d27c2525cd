"""The pull-request gate's parts: scripts/pr_gate.py and scripts/drift.py run them."""
