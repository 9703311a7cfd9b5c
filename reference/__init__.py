"""The reference pack: everything the harness knows about the reference executor (service/).

Its admin client, order scenarios, faults, ledger and the seed's claims as checks. The engine
(loadtests/) never imports this package; the application layer (execbench/) binds it to an
experiment whose `[target]` is the reference service (docs/DESIGN.md, "The target seam").
"""
