def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: end-to-end tests over HTTP with real worker processes (select: -m e2e)")
