"""Typed ComponentResources of the support platform and the pure builders they share."""
