"""What a stack is: its config models, loading, secret inputs, and the wiring of the layers."""
