"""The validation gauntlet: each test a function returning a verdict with its figures."""
