"""Generic adapters behind the target seam: any HTTP service, any flag system."""
