"""The edge tier: how users reach the exposed services (Gateway API or Ingress), TLS, rate limits."""
