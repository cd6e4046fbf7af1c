"""face3d.shared: What the API and the workers both import: settings, states, tables and verbs, the public schema, the
queue, storage, engines and artifact writers. It imports no sibling package."""

# The folder is mapped to face3d.shared (pyproject.toml package-dir). Imported by its folder name instead (the
# repository root on sys.path), it would be a second copy of every module: refuse that loudly.
if __name__ != "face3d.shared":
    raise ImportError(f"import this package as face3d.shared, not {__name__} (install face3d: pip install -e .)")
