"""The jobs layer: store, queue, runtime, events. It knows nothing of LLMs or notebooks."""
