"""CrossGuard policy pack of the homelab stack: rules in ``rules``, offline runner in ``offline``."""
