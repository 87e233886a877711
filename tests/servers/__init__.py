"""Real servers on 127.0.0.1 that tests start and script (no mocks): import as `from servers.<module> import ...`
(pytest puts tests/ on sys.path through tests/conftest.py)."""
