"""The inbox sensor and the run-failure sensor."""
