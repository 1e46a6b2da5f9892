"""One backend per runtime, imported lazily and only inside the worker process."""
