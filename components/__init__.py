"""One Pulumi ComponentResource per layer of the homelab."""
