"""Process wiring shared by every entry point: settings, runtime, logging, metrics."""
