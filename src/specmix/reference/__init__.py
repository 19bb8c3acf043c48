"""NumPy-only reference implementations (never imports torch).

Each op is a ``forward(...) -> (out, cache)`` / ``backward(dout, cache) -> grads`` pair.
"""
