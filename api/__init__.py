"""face3d.api: The HTTP API (Flask): create_app(), one blueprint per resource, problem+json errors, the OpenAPI document,
the web page and `face3d serve`. It imports face3d.shared only."""

# The folder is mapped to face3d.api (pyproject.toml package-dir). Imported by its folder name instead (the
# repository root on sys.path), it would be a second copy of every module: refuse that loudly.
if __name__ != "face3d.api":
    raise ImportError(f"import this package as face3d.api, not {__name__} (install face3d: pip install -e .)")
