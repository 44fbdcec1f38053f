"""Long jobs as cancellable generators of events: open, compress, run, sensitivity, export."""
