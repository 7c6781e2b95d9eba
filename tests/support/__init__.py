"""Helpers shared by the test suites: real servers, mocks and clients."""
