"""face3d.worker: The Celery consumers: the job and batch-item tasks, webhook delivery, the heartbeat, the sweeper and
`face3d worker|sweeper`. It imports face3d.shared only."""

# The folder is mapped to face3d.worker (pyproject.toml package-dir). Imported by its folder name instead (the
# repository root on sys.path), it would be a second copy of every module: refuse that loudly.
if __name__ != "face3d.worker":
    raise ImportError(f"import this package as face3d.worker, not {__name__} (install face3d: pip install -e .)")
