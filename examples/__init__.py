"""Services that are not execbench, to point execbench at (not part of the installed distribution)."""
