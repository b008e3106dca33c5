"""What a node tells its operator: Prometheus metrics and logs that follow one task.

Imports nothing of ours, so every layer (the chain client included) may report through it.
"""
