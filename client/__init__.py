"""face3d.client: What runs on users' machines: the HTTP client, bulk ingestion and `face3d submit|status|download|ingest`.
It imports only face3d.shared.schema and face3d.shared.errors."""

# The folder is mapped to face3d.client (pyproject.toml package-dir). Imported by its folder name instead (the
# repository root on sys.path), it would be a second copy of every module: refuse that loudly.
if __name__ != "face3d.client":
    raise ImportError(f"import this package as face3d.client, not {__name__} (install face3d: pip install -e .)")
