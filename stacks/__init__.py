"""Stack config models, loading, and the wiring of the layers."""

# Load the config models first: section modules (stacks/config_*.py) build on
# stacks.config, which imports them once its base classes exist.
from stacks import config as _config  # noqa: F401
