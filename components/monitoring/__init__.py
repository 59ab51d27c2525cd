"""The monitoring tier as code: bundled servers or operator resources, rules, dashboards, configuration."""
