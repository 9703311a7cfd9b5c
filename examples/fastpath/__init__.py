"""fastpath: a small checkout/search service with an OpenFeature flag; it does not import execbench."""
