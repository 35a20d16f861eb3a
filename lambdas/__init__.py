"""imgflow Lambda handlers: event -> engine call -> small JSON result."""
