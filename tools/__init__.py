"""Developer tools for the homelab repository."""
