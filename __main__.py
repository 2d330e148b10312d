"""homelab: a Talos Linux Kubernetes cluster on bare metal; Flux takes over the apps."""

import pulumi

from stacks import graph, loader

config = loader.load()
built = graph.build(config)
for key, value in built.outputs.items():
    pulumi.export(key, value)
