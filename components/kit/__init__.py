"""The component kit every tier builds with: one context, one way to register, one workload builder,
one network vocabulary. Pure builders plus the registration helper; no tier lives here."""
