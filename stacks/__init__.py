"""Stack config models, loading, and the wiring of the layers."""
