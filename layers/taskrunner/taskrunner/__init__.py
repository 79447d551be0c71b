"""TaskRunner: deterministic Task Pack execution with approvals, policy gates and signed evidence."""

__version__ = "0.1.0"
