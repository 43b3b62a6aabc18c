"""Stand-ins for hardware the test suite does not have, driven through the real client tools."""
